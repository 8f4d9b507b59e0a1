"""Settings of the hello plugin, validated at startup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma


@dataclass(frozen=True, slots=True)
class HelloSettings:
    """The validated ``[hello]`` section."""

    GREETING: str
    PUNCTUATION: str
    MAX_NAME_LENGTH: int


class HelloSettingsSchema(ma.Schema):
    """``POWERSTRIP_HELLO__<KEY>`` / ``[hello]``: how greetings are worded."""

    GREETING = ma.fields.String(load_default="Hello", validate=ma.validate.Length(min=1, max=40))
    PUNCTUATION = ma.fields.String(load_default="!", validate=ma.validate.OneOf(["!", ".", "?"]))
    MAX_NAME_LENGTH = ma.fields.Integer(load_default=50, validate=ma.validate.Range(1, 200))

    @ma.post_load
    def build(self, data: dict[str, Any], **_: Any) -> HelloSettings:
        """Build the injectable settings object."""
        return HelloSettings(**data)
