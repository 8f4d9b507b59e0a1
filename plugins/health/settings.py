"""Settings of the health plugin (``POWERSTRIP_HEALTH__<KEY>`` / ``[health]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """The validated ``[health]`` section."""

    CHECK_TIMEOUT: float
    OPTIONAL_CHECKS: frozenset[str]


class HealthSettingsSchema(ma.Schema):
    """How long readiness waits for the checks, and which only degrade it."""

    CHECK_TIMEOUT = ma.fields.Float(
        load_default=2.0,
        validate=ma.validate.Range(min=0.1, max=30),
        metadata={
            "description": "Seconds readiness waits for its checks (run side by side); a check "
            "still running then is down (TimeoutError)"
        },
    )
    OPTIONAL_CHECKS = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=64)),
        load_default=lambda: ["redis"],
        metadata={
            "description": "Checks the instance serves without: their failure reports degraded "
            "with 200, not 503 (redis: the rate limits count in memory meanwhile)"
        },
    )

    @ma.post_load
    def build(self, data: dict[str, Any], **_: Any) -> HealthSettings:
        """Build the settings."""
        return HealthSettings(
            CHECK_TIMEOUT=data["CHECK_TIMEOUT"], OPTIONAL_CHECKS=frozenset(data["OPTIONAL_CHECKS"])
        )
