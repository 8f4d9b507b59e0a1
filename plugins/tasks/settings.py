"""Settings of the tasks plugin (``POWERSTRIP_TASKS__<KEY>`` / ``[tasks]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma


@dataclass(frozen=True, slots=True)
class TasksSettings:
    """The validated ``[tasks]`` section."""

    ACTIVITY_LIMIT: int


class TasksSettingsSchema(ma.Schema):
    """How many entries the activity feed shows."""

    ACTIVITY_LIMIT = ma.fields.Integer(load_default=50, validate=ma.validate.Range(1, 500))

    @ma.post_load
    def build(self, data: dict[str, Any], **_: Any) -> TasksSettings:
        """The injectable settings object."""
        return TasksSettings(**data)
