"""Settings of the tasks plugin (``POWERSTRIP_TASKS__<KEY>`` / ``[tasks]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma


@dataclass(frozen=True, slots=True)
class TasksSettings:
    """The validated ``[tasks]`` section."""

    IDEMPOTENCY_KEY_HOURS: int
    MAX_PAGE_SIZE: int


class TasksSettingsSchema(ma.Schema):
    """How long Idempotency-Key answers are replayed; the largest page."""

    IDEMPOTENCY_KEY_HOURS = ma.fields.Integer(load_default=24, validate=ma.validate.Range(1, 720))
    MAX_PAGE_SIZE = ma.fields.Integer(load_default=100, validate=ma.validate.Range(1, 1000))

    @ma.post_load
    def build(self, data: dict[str, Any], **_: Any) -> TasksSettings:
        """The injectable settings object."""
        return TasksSettings(**data)
