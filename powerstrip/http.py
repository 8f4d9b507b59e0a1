"""Header names of the HTTP conventions the host and plugins share."""

from __future__ import annotations

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
IF_MATCH_HEADER = "If-Match"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"
