"""Response schemas of the health plugin."""

from __future__ import annotations

import marshmallow as ma


class LiveSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class PluginStateSchema(ma.Schema):
    state = ma.fields.String(required=True)
    reason = ma.fields.String(allow_none=True)


class CheckSchema(ma.Schema):
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["up", "down", "degraded"]),
        metadata={
            "description": "up; down; or degraded: an optional dependency is down and the "
            "instance serves without it (the rate-limit Redis: limits count in memory)"
        },
    )
    error = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Kind of failure (ConnectionError; TimeoutError: no answer in time)"
        },
    )
    duration_ms = ma.fields.Float(required=True)


class ReadySchema(ma.Schema):
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["ready", "degraded", "unavailable"]),
        metadata={
            "description": "ready; degraded (200: an optional check is down); unavailable "
            "(503: a plugin failed or a required check is down)"
        },
    )
    plugins = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(PluginStateSchema))
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(CheckSchema))
