"""Request and response schemas of the accounts plugin."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

# The password policy (plugins.accounts.passwords) refuses, with a 422 naming each reason, a
# password shorter than PASSWORD_MIN_LENGTH (8 at the least, 10 by default), a common one or one
# holding the email's local part: the document states the minimum no configuration goes below.
PASSWORD_DOC = {
    "minLength": 8,
    "description": "At least PASSWORD_MIN_LENGTH characters (8 or more; default 10), not a "
    "common password, not containing the email's name (else 422)",
}
# The roles are the operator's ROLE_SCOPES, or admin and the roles enabled plugins grant.
ROLE_DOC = {"description": "A role of the role table (admin and user unless configured; else 422)"}


class NormalisedEmail(ma.fields.Email):
    """An email address, trimmed and lower-cased before it is validated."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


class LoginSchema(ma.Schema):
    email = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=320))
    password = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(max=1024)
    )


class RefreshSchema(ma.Schema):
    refresh_token = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))


class LogoutSchema(ma.Schema):
    refresh_token = ma.fields.String(validate=ma.validate.Length(min=1, max=200))


class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Seconds"})


class NewUserSchema(ma.Schema):
    email = NormalisedEmail(required=True, validate=ma.validate.Length(max=320))
    password = ma.fields.String(
        required=True,
        load_only=True,
        validate=ma.validate.Length(max=1024),
        metadata=PASSWORD_DOC,
    )
    role = ma.fields.String(
        load_default="user", validate=ma.validate.Length(min=1, max=50), metadata=ROLE_DOC
    )


class RegistrationSchema(ma.Schema):
    email = NormalisedEmail(required=True, validate=ma.validate.Length(max=320))
    password = ma.fields.String(
        required=True,
        load_only=True,
        validate=ma.validate.Length(max=1024),
        metadata=PASSWORD_DOC,
    )


class UserSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    is_active = ma.fields.Boolean(required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class UserQuerySchema(ma.Schema):
    email = ma.fields.String(validate=ma.validate.Length(max=320))
    active = ma.fields.Boolean()
    role = ma.fields.String(validate=ma.validate.Length(max=50))


class PasswordChangeSchema(ma.Schema):
    current_password = ma.fields.String(required=True, load_only=True)
    password = ma.fields.String(
        required=True,
        load_only=True,
        validate=ma.validate.Length(max=1024),
        metadata=PASSWORD_DOC,
    )


class UserUpdateSchema(ma.Schema):
    role = ma.fields.String(validate=ma.validate.Length(min=1, max=50), metadata=ROLE_DOC)
    is_active = ma.fields.Boolean()


class NewApiKeySchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    scopes = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=100)), load_default=list
    )


class ApiKeySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    prefix = ma.fields.String(required=True)
    scopes = ma.fields.List(ma.fields.String(), required=True)
    created_at = ma.fields.DateTime(required=True)
    last_used_at = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)


class CreatedApiKeySchema(ApiKeySchema):
    key = ma.fields.String(required=True, metadata={"description": "Shown once; store it now"})
