"""Who is calling, and what may they do: ``Principal``, ``Caller``, ``requires``, ``Authenticator``.

Authentication runs once per request, in a host hook before the view and outside the
injector: the host asks every :class:`Authenticator` a plugin contributed (the accounts plugin
contributes one) and keeps the result for the request. Asking for ``principal: Principal`` in
a view or service only hands out that result; it never does I/O. Other plugins see this
contract and nothing of the plugin that authenticates::

    @blp.route("/reports")
    @blp.response(200, ReportSchema(many=True))
    @requires("reports:read")
    def reports(service: ReportService, principal: Principal) -> list[Report]:
        return service.visible_to(principal.require("reports:read"))

Unauthenticated callers get a 401 problem (with ``WWW-Authenticate``), authenticated callers
without the scope a 403 problem. ``require`` returns a :class:`Caller`, whose ``subject`` is
always a ``str``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from flask import Request, has_request_context, request
from flask_smorest import Blueprint

from powerstrip.http import REQUIRES, mark
from powerstrip.problems import Problem

F = TypeVar("F", bound=Callable[..., Any])

BEARER_SCHEME = "bearerAuth"
API_KEY_SCHEME = "apiKeyAuth"
ALL_SCOPES = "*"
_PRINCIPAL = "powerstrip.principal"  # the WSGI environ key of the request's principal


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: what :meth:`Principal.require` returns.

    :param subject: the caller's id (for an API key, its owner's); never empty
    :param kind: how the caller authenticated (``user``, ``api_key``, ...)
    :param scopes: what the caller may do (``*`` grants every scope)
    :param credential: the API key's or access token's id, for audit and logout
    """

    subject: str
    kind: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    credential: str | None = None

    def has(self, scope: str) -> bool:
        """Whether the caller holds ``scope``."""
        return ALL_SCOPES in self.scopes or scope in self.scopes


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent the current request: an authenticated :class:`Caller`, or nobody.

    :param caller: the authenticated caller, None when anonymous
    :param problem: why presented credentials were refused (the 401's detail)
    """

    caller: Caller | None = None
    problem: str | None = None

    @classmethod
    def of(
        cls,
        subject: str,
        kind: str = "user",
        scopes: frozenset[str] | set[str] = frozenset(),
        credential: str | None = None,
    ) -> Principal:
        """An authenticated principal (what an :class:`Authenticator` returns on success)."""
        return cls(Caller(subject, kind, frozenset(scopes), credential))

    @classmethod
    def refused(cls, problem: str) -> Principal:
        """Credentials were presented and refused: anonymous, with the reason."""
        return cls(problem=problem)

    @property
    def authenticated(self) -> bool:
        """Whether credentials were presented and accepted."""
        return self.caller is not None

    @property
    def kind(self) -> str:
        """How the caller authenticated (``user``, ``api_key``, ...), or ``anonymous``."""
        return self.caller.kind if self.caller is not None else "anonymous"

    @property
    def subject(self) -> str | None:
        """The caller's id, None when anonymous."""
        return self.caller.subject if self.caller is not None else None

    def has(self, scope: str) -> bool:
        """Whether the caller is authenticated and holds ``scope``."""
        return self.caller is not None and self.caller.has(scope)

    def require(self, *scopes: str) -> Caller:
        """The caller; a 401 problem if unauthenticated, a 403 problem if a scope is missing."""
        if self.caller is None:
            raise Problem(
                401,
                self.problem or "Authentication is required: send a bearer token or an API key.",
                headers={"WWW-Authenticate": 'Bearer realm="powerstrip"'},
            )
        missing = sorted(scope for scope in scopes if not self.caller.has(scope))
        if missing:
            raise Problem(403, f"This requires the scope(s): {', '.join(missing)}.")
        return self.caller


ANONYMOUS = Principal()


@runtime_checkable
class Authenticator(Protocol):
    """Turns a request's credentials into a :class:`Principal`; a plugin contributes it.

    List the class in ``Plugin(authenticators=[TokenAuthenticator])`` and name the request
    headers it reads in ``credentials``. For a request carrying one of them, the injector builds
    it (bind it ``request_scope`` in your module when it holds a ``Session``) and the host calls
    ``authenticate``, before the view and outside the injector's lock; the first answer that is
    not None wins. A request carrying none of them costs it nothing. Return None when the
    credentials are not for this authenticator, :meth:`Principal.refused` when they are bad.
    Side effects (a key's last use) belong here too, never in an injector provider.
    """

    credentials: ClassVar[tuple[str, ...]]
    """The request headers that carry this authenticator's credentials."""

    def authenticate(self, request: Request) -> Principal | None:
        """The request's principal, or None if its credentials are not for this one."""


def request_principal() -> Principal:
    """The principal the host authenticated for the current request (anonymous elsewhere).

    For the host and :func:`requires`; plugins ask for ``Principal`` by injection.
    """
    if not has_request_context():
        return ANONYMOUS
    principal: Principal = request.environ.get(_PRINCIPAL, ANONYMOUS)
    return principal


def remember_principal(principal: Principal) -> None:
    """Keep ``principal`` for the current request (called by the host's authentication hook).

    It lives in the request's WSGI environ, which dies with the request (``g`` belongs to the
    application context, which a test or a command may keep across requests).
    """
    request.environ[_PRINCIPAL] = principal


def requires(*scopes: str) -> Callable[[F], F]:
    """Require an authenticated caller holding every one of ``scopes`` (documented in OpenAPI)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request_principal().require(*scopes)
            return view(*args, **kwargs)

        mark(wrapper, REQUIRES, scopes)
        document = Blueprint.doc(
            security=[{BEARER_SCHEME: list(scopes)}, {API_KEY_SCHEME: list(scopes)}],
            responses={"401": "UNAUTHORIZED", "403": "FORBIDDEN"},
        )
        return document(wrapper)  # type: ignore[no-any-return]

    return decorator
