"""HTTP views of the accounts plugin: validate, call one service method, return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from flask import request
from flask_smorest import Blueprint

from plugins.accounts.api_keys import ApiKeyService
from plugins.accounts.logins import AuthService, TokenPair
from plugins.accounts.models import ApiKey, User
from plugins.accounts.schemas import (
    ApiKeySchema,
    CreatedApiKeySchema,
    LoginSchema,
    LogoutSchema,
    NewApiKeySchema,
    NewUserSchema,
    PasswordChangeSchema,
    RefreshSchema,
    RegistrationSchema,
    TokenPairSchema,
    UserQuerySchema,
    UserSchema,
    UserUpdateSchema,
)
from plugins.accounts.settings import AccountsSettings
from plugins.accounts.users import UserService, account_id
from powerstrip import (
    NO_STORE_HEADERS,
    Page,
    PageRequest,
    Principal,
    Problem,
    paginated,
    problem_responses,
    requires,
)

T = TypeVar("T")
Secret = tuple[T, int, Mapping[str, str]]  # a body no cache may keep, its status, its headers

ADMIN = "accounts:admin"
SELF = "accounts:self"

blueprint = Blueprint("accounts", __name__, description="Users, tokens and API keys")


NOT_STORED = {
    "Cache-Control": {
        "description": "no-store: no cache may keep tokens",
        "schema": {"type": "string"},
    },
    "Pragma": {"description": "no-cache (for HTTP/1.0 caches)", "schema": {"type": "string"}},
}


@blueprint.route("/tokens", methods=["POST"])
@blueprint.arguments(LoginSchema())
@blueprint.response(200, TokenPairSchema, headers=NOT_STORED)
@blueprint.alt_response(401, response="UNAUTHORIZED")
def login(credentials: dict[str, Any], auth: AuthService) -> Secret[TokenPair]:
    """Log in with email and password: an access token and a refresh token."""
    pair = auth.login(credentials["email"], credentials["password"], request.remote_addr or "-")
    return pair, 200, NO_STORE_HEADERS


@blueprint.route("/tokens/refresh", methods=["POST"])
@blueprint.arguments(RefreshSchema())
@blueprint.response(200, TokenPairSchema, headers=NOT_STORED)
@blueprint.alt_response(401, response="UNAUTHORIZED")
def refresh(body: dict[str, Any], auth: AuthService) -> Secret[TokenPair]:
    """Trade a refresh token for new tokens (it dies; reusing it revokes its session)."""
    return auth.refresh(body["refresh_token"]), 200, NO_STORE_HEADERS


@blueprint.route("/tokens", methods=["DELETE"])
@blueprint.arguments(LogoutSchema(), required=False)  # no body: only the access token dies
@blueprint.response(204)
@requires()
def logout(body: dict[str, Any], auth: AuthService, principal: Principal) -> None:
    """Log out: the access token and the given refresh token's session are revoked."""
    auth.logout(principal.require(), body.get("refresh_token"))


@blueprint.route("/register", methods=["POST"])
@blueprint.arguments(RegistrationSchema())
@blueprint.response(201, UserSchema)
@problem_responses(403, 409)
def register(body: dict[str, Any], users: UserService, settings: AccountsSettings) -> User:
    """Create one's own account (only when registration is open)."""
    if not settings.REGISTRATION_OPEN:
        raise Problem(403, "Registration is closed; ask an administrator for an account.")
    return users.create(body["email"], body["password"])


@blueprint.route("/users", methods=["GET"])
@blueprint.arguments(UserQuerySchema(), location="query")
@blueprint.response(200, UserSchema(many=True))
@requires(ADMIN)
@paginated(max_page_size=100)
def list_users(query: dict[str, Any], users: UserService, paging: PageRequest) -> Page[User]:
    """List users, oldest first (filter by email, active, role)."""
    return users.list(
        email=query.get("email"), active=query.get("active"), role=query.get("role"), paging=paging
    )


@blueprint.route("/users", methods=["POST"])
@blueprint.arguments(NewUserSchema())
@blueprint.response(201, UserSchema)
@requires(ADMIN)
@problem_responses(409)
def create_user(body: dict[str, Any], users: UserService) -> User:
    """Create a user."""
    return users.create(body["email"], body["password"], body["role"])


@blueprint.route("/users/me", methods=["GET"])
@blueprint.response(200, UserSchema)
@requires(SELF)
def me(users: UserService, principal: Principal) -> User:
    """The calling user."""
    return users.get(account_id(principal.require(SELF)))


@blueprint.route("/users/me/password", methods=["PUT"])
@blueprint.arguments(PasswordChangeSchema())
@blueprint.response(204)
@requires(SELF)
def change_password(body: dict[str, Any], users: UserService, principal: Principal) -> None:
    """Change one's own password; every existing token of the user dies."""
    caller = principal.require(SELF)
    users.change_password(account_id(caller), body["current_password"], body["password"])


@blueprint.route("/users/<int:user_id>", methods=["GET"])
@blueprint.response(200, UserSchema)
@requires(ADMIN)
@problem_responses(404)
def user(user_id: int, users: UserService) -> User:
    """One user."""
    return users.get(user_id)


@blueprint.route("/users/<int:user_id>", methods=["PATCH"])
@blueprint.arguments(UserUpdateSchema())
@blueprint.response(200, UserSchema)
@requires(ADMIN)
@problem_responses(404, 409)
def update_user(body: dict[str, Any], user_id: int, users: UserService) -> User:
    """Change a user's role, deactivate or reactivate it (never the last active admin)."""
    return users.update(user_id, role=body.get("role"), is_active=body.get("is_active"))


@blueprint.route("/api-keys", methods=["POST"])
@blueprint.arguments(NewApiKeySchema())
@blueprint.response(201, CreatedApiKeySchema)
@requires(SELF)
def create_api_key(body: dict[str, Any], keys: ApiKeyService, principal: Principal) -> ApiKey:
    """Create an API key with some of one's scopes; its secret is shown only now.

    Needs a bearer token from a recent password login (``API_KEY_FRESH_LOGIN_MINUTES``): an
    API key cannot create another, and an older login gets a 403 asking to log in again.
    """
    value, key = keys.create(principal.require(SELF), body["name"], body["scopes"])
    key.key = value  # type: ignore[attr-defined]  # shown once, never stored
    return key


@blueprint.route("/api-keys", methods=["GET"])
@blueprint.response(200, ApiKeySchema(many=True))
@requires(SELF)
def list_api_keys(keys: ApiKeyService, principal: Principal) -> Sequence[ApiKey]:
    """One's API keys (never their secrets)."""
    return keys.list(principal.require(SELF))


@blueprint.route("/api-keys/<int:key_id>", methods=["DELETE"])
@blueprint.response(204)
@requires(SELF)
@problem_responses(404)
def revoke_api_key(key_id: int, keys: ApiKeyService, principal: Principal) -> None:
    """Revoke an API key."""
    keys.revoke(principal.require(SELF), key_id)
