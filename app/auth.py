"""Who is calling, and what may they do: the ``Principal`` contract and ``requires``.

The host binds an anonymous principal; an accounts plugin rebinds :class:`Principal`
(request-scoped) to the authenticated caller. Other plugins only ever see this contract:

    @blp.route("/tasks", methods=["POST"])
    @blp.response(201, TaskSchema)
    @requires("tasks:write")
    def create_task(...): ...

or ask for ``principal: Principal`` and call ``principal.require("tasks:write")``.
Unauthenticated callers get a 401 problem (with ``WWW-Authenticate``), authenticated callers
without the scope a 403 problem. Both schemes are documented in OpenAPI, so Swagger UI's
"Authorize" button works against the live API.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flask import current_app
from flask_smorest import Blueprint

from app.errors import Problem
from app.injection import INJECTOR

F = TypeVar("F", bound=Callable[..., Any])

BEARER_SCHEME = "bearerAuth"
API_KEY_SCHEME = "apiKeyAuth"
API_KEY_HEADER = "X-API-Key"
ALL_SCOPES = "*"
SECURITY_SCHEMES = {
    BEARER_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /api/v1/accounts/tokens",
    },
    API_KEY_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "An API key for machine clients",
    },
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of the current request.

    :param kind: ``anonymous``, ``user`` or ``api_key``
    :param subject: the user's id (for an API key, its owner's), None when anonymous
    :param scopes: what the caller may do (``*`` grants every scope)
    :param credential: the API key's or access token's id, for audit and logout
    :param problem: why presented credentials were refused (the 401's detail)
    """

    kind: Literal["anonymous", "user", "api_key"] = "anonymous"
    subject: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    credential: str | None = None
    problem: str | None = None

    @property
    def authenticated(self) -> bool:
        """Whether credentials were presented and accepted."""
        return self.kind != "anonymous"

    def has(self, scope: str) -> bool:
        """Whether the caller holds ``scope``."""
        return ALL_SCOPES in self.scopes or scope in self.scopes

    def require(self, *scopes: str) -> None:
        """Raise a 401 problem if unauthenticated, a 403 problem if a scope is missing."""
        if not self.authenticated:
            raise Problem(
                401,
                self.problem or "Authentication is required: send a bearer token or an API key.",
                headers={"WWW-Authenticate": 'Bearer realm="powerstrip"'},
            )
        missing = sorted(scope for scope in scopes if not self.has(scope))
        if missing:
            raise Problem(403, f"This requires the scope(s): {', '.join(missing)}.")


ANONYMOUS = Principal()


def requires(*scopes: str) -> Callable[[F], F]:
    """Require an authenticated caller holding every one of ``scopes`` (documented in OpenAPI)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The host resolves the request's principal, as flask-injector does for views.
            principal: Principal = current_app.extensions[INJECTOR].get(Principal)
            principal.require(*scopes)
            return view(*args, **kwargs)

        document = Blueprint.doc(
            security=[{BEARER_SCHEME: list(scopes)}, {API_KEY_SCHEME: list(scopes)}],
            responses={"401": "UNAUTHORIZED", "403": "FORBIDDEN"},
        )
        return document(wrapper)  # type: ignore[no-any-return]

    return decorator
