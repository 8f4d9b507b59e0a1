"""Request and response schemas of the hello plugin."""

from __future__ import annotations

import marshmallow as ma


class GreetingRequestSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "Ada"})


class GreetingSchema(ma.Schema):
    message = ma.fields.String(required=True, metadata={"example": "Hello, Ada!"})
    at = ma.fields.AwareDateTime(required=True)


class StoredGreetingSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
