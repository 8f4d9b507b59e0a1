"""Header names of the HTTP conventions the host and plugins share."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from flask import Request, request

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
IF_MATCH_HEADER = "If-Match"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"

# For answers that carry a secret (tokens, a key shown once): no cache may keep them
# (RFC 9111; RFC 6749 section 5.1 for token responses). Return them with the body:
# ``return pair, 200, NO_STORE_HEADERS``.
NO_STORE_HEADERS = MappingProxyType({"Cache-Control": "no-store", "Pragma": "no-cache"})
IF_NONE_MATCH_HEADER = "If-None-Match"
ETAG_HEADER = "ETag"
PAGINATION_HEADER = "X-Pagination"
LINK_HEADER = "Link"

REQUIRES = "requires"
"""The mark naming the scopes ``@requires`` demands (the host checks them before a replay)."""

PASSES = "passes"
"""The mark naming the view parameters SDK decorators fill (the injector leaves them)."""

HTTP_MARKS = "__powerstrip_http__"
"""The attribute where the SDK's HTTP decorators record what they add to an operation.

``@conditional``, ``@paginated`` and ``@idempotent`` each record an entry; the host reads them
to run host-side mechanisms (idempotency) and to document the operation (parameters,
problem responses, response headers). Decorators copy a function's ``__dict__`` onto their
wrappers (``functools.wraps``), so the marks survive flask-smorest's and flask-injector's.
"""


def mark(view: Callable[..., Any], name: str, value: Any) -> None:
    """Record that the SDK decorator ``name`` applies to ``view`` (a fresh dict: no sharing)."""
    setattr(view, HTTP_MARKS, {**marks(view), name: value})


def marks(view: Callable[..., Any]) -> Mapping[str, Any]:
    """The SDK decorators applied to ``view``: name -> what each recorded."""
    found: Mapping[str, Any] = getattr(view, HTTP_MARKS, {})
    return found


def parameter_of(view: Callable[..., Any], kind: type) -> str | None:
    """The name of ``view``'s parameter annotated ``kind`` (or ``kind | None``), if any."""
    try:
        hints = typing.get_type_hints(view)
    except NameError as exc:
        raise TypeError(f"{view.__qualname__}: cannot resolve its annotations: {exc}") from None
    names = [
        name
        for name in inspect.signature(view).parameters
        if hints.get(name) is kind or hints.get(name) == kind | None
    ]
    return names[0] if names else None


def passes(wrapper: Callable[..., Any], name: str | None) -> None:
    """Record that an SDK decorator fills parameter ``name`` of the view (not the injector)."""
    if name is not None:
        mark(wrapper, PASSES, frozenset({*marks(wrapper).get(PASSES, ()), name}))


def unpack(result: Any) -> tuple[Any, int | None, dict[str, str]]:
    """A view's ``body``, ``(body, status)``, ``(body, headers)`` or ``(body, status, headers)``."""
    if type(result) is not tuple:
        return result, None, {}
    if len(result) == 3:
        return result[0], result[1], dict(result[2] or {})
    body, second = result
    if isinstance(second, int):
        return body, second, {}
    return body, None, dict(second or {})


_UNPREFIXED = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})  # WSGI keys without HTTP_


def environ_key(header: str) -> str:
    """The WSGI environ key of a request header (``X-API-Key``: ``HTTP_X_API_KEY``), as
    werkzeug's ``EnvironHeaders`` looks it up: one dict lookup instead of about ten calls."""
    key = header.upper().replace("-", "_")
    return key if key in _UNPREFIXED else f"HTTP_{key}"


def current_request() -> Request:
    """The request being handled: the object behind ``flask.request``.

    Each attribute read through ``flask.request`` looks the request up again (about five
    function calls): a hook reading several takes the object once.
    """
    handled: Request = _current_request()
    return handled


# flask.request's own lookup of its object (werkzeug's LocalProxy._get_current_object), read once.
_current_request: Callable[[], Request] = request._get_current_object  # type: ignore[attr-defined]
