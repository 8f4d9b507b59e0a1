"""Settings of the accounts plugin (``POWERSTRIP_ACCOUNTS__<KEY>`` / ``[accounts]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from limits import parse_many

from powerstrip import settings_environment

MIN_KEY_LENGTH = 32
MAX_PRINCIPAL_CACHE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class AccountsSettings:
    """The validated ``[accounts]`` section."""

    ISSUER: str
    AUDIENCE: str
    ACCESS_TOKEN_MINUTES: int
    REFRESH_TOKEN_DAYS: int
    SIGNING_KEYS: dict[str, str]  # empty: the instance's development key (see signing.py)
    CURRENT_KEY: str | None
    REGISTRATION_OPEN: bool
    PASSWORD_MIN_LENGTH: int
    ROLE_SCOPES: dict[str, list[str]] | None
    LOGIN_LIMIT_PER_ADDRESS: str
    LOGIN_FAILURES_PER_ACCOUNT: str
    API_KEY_FRESH_LOGIN_MINUTES: int
    REVOKE_API_KEYS_ON_PASSWORD_CHANGE: bool
    REVOKE_API_KEYS_ON_DEACTIVATION: bool
    PRINCIPAL_CACHE_SECONDS: int

    def __repr__(self) -> str:
        return f"AccountsSettings(ISSUER={self.ISSUER!r}, SIGNING_KEYS=<{len(self.SIGNING_KEYS)}>)"


def _limits(value: str) -> None:
    try:
        parse_many(value)
    except ValueError as exc:
        raise ma.ValidationError("not a rate limit such as '5 per 15 minutes'") from exc


class AccountsSettingsSchema(ma.Schema):
    """Token lifetimes, issuer, audience, signing keys, registration and login limits."""

    ISSUER = ma.fields.String(load_default="powerstrip")
    AUDIENCE = ma.fields.String(load_default="powerstrip-api")
    ACCESS_TOKEN_MINUTES = ma.fields.Integer(load_default=15, validate=ma.validate.Range(1, 1440))
    REFRESH_TOKEN_DAYS = ma.fields.Integer(load_default=14, validate=ma.validate.Range(1, 365))
    SIGNING_KEYS = ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.Regexp(r"^[A-Za-z0-9._-]{1,32}$")),
        values=ma.fields.String(validate=ma.validate.Length(min=MIN_KEY_LENGTH)),
        load_default=None,
        allow_none=True,
        metadata={
            "secret": True,
            "description": "key id -> HS256 secret (32+ chars); required in production. "
            "Unset in development and testing: a random key kept in the instance folder",
        },
    )
    CURRENT_KEY = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "key id that signs", "secret": False},
    )
    REGISTRATION_OPEN = ma.fields.Boolean(load_default=False)
    PASSWORD_MIN_LENGTH = ma.fields.Integer(load_default=10, validate=ma.validate.Range(8, 128))
    ROLE_SCOPES = ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.Length(min=1, max=50)),
        values=ma.fields.List(ma.fields.String()),
        load_default=None,
        allow_none=True,
        metadata={
            "description": "role -> scopes; unset: admin holds every scope and each other role "
            "what the enabled plugins grant it"
        },
    )
    LOGIN_LIMIT_PER_ADDRESS = ma.fields.String(load_default="30 per minute", validate=_limits)
    LOGIN_FAILURES_PER_ACCOUNT = ma.fields.String(load_default="5 per 15 minutes", validate=_limits)
    API_KEY_FRESH_LOGIN_MINUTES = ma.fields.Integer(
        load_default=5,
        validate=ma.validate.Range(1, 1440),
        metadata={
            "description": "creating an API key needs a bearer token whose password login is "
            "at most this old"
        },
    )
    REVOKE_API_KEYS_ON_PASSWORD_CHANGE = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "a password change revokes the user's API keys too"},
    )
    REVOKE_API_KEYS_ON_DEACTIVATION = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "deactivating a user revokes its API keys for good"},
    )
    PRINCIPAL_CACHE_SECONDS = ma.fields.Integer(
        load_default=0,
        validate=ma.validate.Range(0, MAX_PRINCIPAL_CACHE_SECONDS),
        metadata={
            "description": "seconds a worker may answer a bearer token or API key from its "
            "last accepted owner look-up (one query fewer a request); a revocation, password "
            "change, deactivation or role change then takes up to this long to reach every "
            "worker. 0: every request looks its credentials up"
        },
    )

    @ma.validates_schema
    def _keys(self, data: dict[str, Any], **_: Any) -> None:
        roles = data.get("ROLE_SCOPES")
        if roles is not None and "admin" not in roles:
            raise ma.ValidationError("must define the admin role", "ROLE_SCOPES")
        keys = data.get("SIGNING_KEYS")
        current = data.get("CURRENT_KEY")
        if not keys:
            if settings_environment() not in ("development", "testing"):
                raise ma.ValidationError("required outside development and testing", "SIGNING_KEYS")
            if current is not None:
                raise ma.ValidationError("must name one of SIGNING_KEYS", "CURRENT_KEY")
            return
        if current is not None and current not in keys:
            raise ma.ValidationError("must name one of SIGNING_KEYS", "CURRENT_KEY")

    @ma.post_load
    def build(self, data: dict[str, Any], **_: Any) -> AccountsSettings:
        """Build the settings; without keys (development and testing only) the instance's
        generated key signs (``SigningKeys``)."""
        keys = dict(data["SIGNING_KEYS"] or {})
        data["SIGNING_KEYS"] = keys
        data["CURRENT_KEY"] = data["CURRENT_KEY"] or next(iter(keys), None)
        return AccountsSettings(**data)
