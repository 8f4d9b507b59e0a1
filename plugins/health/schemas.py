"""Response schemas of the health plugin."""

from __future__ import annotations

import marshmallow as ma


class LiveSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class PluginStateSchema(ma.Schema):
    state = ma.fields.String(required=True)
    reason = ma.fields.String(allow_none=True)


class CheckSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "up or down"})
    error = ma.fields.String(allow_none=True, metadata={"description": "Kind of failure"})
    duration_ms = ma.fields.Float(required=True)


class ReadySchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "ready or degraded"})
    plugins = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(PluginStateSchema))
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(CheckSchema))
