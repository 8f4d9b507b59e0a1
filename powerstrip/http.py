"""Header names of the HTTP conventions the host and plugins share."""

from __future__ import annotations

from types import MappingProxyType

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
IF_MATCH_HEADER = "If-Match"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"

# For answers that carry a secret (tokens, a key shown once): no cache may keep them
# (RFC 9111; RFC 6749 section 5.1 for token responses). Return them with the body:
# ``return pair, 200, NO_STORE_HEADERS``.
NO_STORE_HEADERS = MappingProxyType({"Cache-Control": "no-store", "Pragma": "no-cache"})
