"""Conditional requests (RFC 9110 section 13): ETags, ``If-None-Match`` and ``If-Match``.

A model that derives from :class:`~powerstrip.db.Versioned` has a version SQLAlchemy bumps on
every UPDATE and checks in the UPDATE's WHERE clause; its :func:`entity_tag` is derived from
that version. ``@conditional`` on a view that returns such a row then:

- sets ``ETag`` on the answer of GET, HEAD, POST, PUT and PATCH;
- answers a GET or HEAD whose ``If-None-Match`` names the current tag 304, with no body
  (weak comparison, ``*`` matches);
- requires ``If-Match`` on PUT, PATCH and DELETE: without it, a 428 problem before the view
  runs; with it, the view receives a :class:`Precondition` (a parameter annotated so) and
  hands it to the service, which calls :meth:`Precondition.check` on the row it loaded
  before changing it: a 412 problem unless a tag matches (strong comparison; ``*`` matches
  any current row). A commit by someone else between that check and the write still
  answers 412: the versioned UPDATE matches no row, and the host turns SQLAlchemy's
  ``StaleDataError`` into the same 412 problem.

The service sees a domain-level guard, never a header::

    @blueprint.route("/notes/<int:note_id>", methods=["PATCH"])
    @blueprint.arguments(NotePatchSchema)
    @blueprint.response(200, NoteSchema)
    @conditional
    def patch_note(body, note_id: int, notes: NoteService, expected: Precondition) -> Note:
        return notes.update(note_id, body, expected)

The host documents all of it in the OpenAPI document (the ``ETag`` header, the
``If-None-Match`` and ``If-Match`` parameters, the 304, 412 and 428 answers).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from flask import Response, request
from werkzeug.datastructures import ETags
from werkzeug.http import quote_etag

from powerstrip.http import ETAG_HEADER, PASSES, mark, marks
from powerstrip.problems import Problem

F = TypeVar("F", bound=Callable[..., Any])

CONDITIONAL = "conditional"
READ_METHODS = frozenset({"GET", "HEAD"})
WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
STALE = "The resource changed since you read it: read it again and retry with its ETag."
MISSING = "Send If-Match with the ETag you last read (or * to accept any version)."


def entity_tag(resource: object) -> str:
    """The strong entity tag (unquoted) of a persisted :class:`~powerstrip.db.Versioned` row.

    It names the row's table, key and version, hashed: opaque to clients, equal for equal
    versions of one row, different after every committed change.
    """
    state = sa.inspect(resource, raiseerr=False)
    version = getattr(resource, "version", None)
    if state is None or state.identity is None or not isinstance(version, int):
        raise TypeError(f"{type(resource).__name__} is not a persisted Versioned row")
    table = state.mapper.persist_selectable
    name = f"{getattr(table, 'name', table)}:{':'.join(map(str, state.identity))}"
    digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
    return f"{digest}-{version}"


@dataclass(frozen=True, slots=True)
class Precondition:
    """What a writer expects a row to be: the entity tags it last read (or any row).

    A view decorated ``@conditional`` receives the request's ``If-Match`` as one; a CLI or
    another service that writes unconditionally passes :attr:`ANY`.
    """

    tags: ETags

    ANY: ClassVar[Precondition]

    def check(self, resource: object) -> None:
        """Raise a 412 problem unless ``resource`` is still a version the writer read."""
        if not self.tags.contains(entity_tag(resource)):
            raise Problem(412, STALE)


Precondition.ANY = Precondition(ETags(star_tag=True))


def parameter_of(view: Callable[..., Any], kind: type) -> str | None:
    """The name of ``view``'s parameter annotated ``kind``, if it has one."""
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
    """Record that the SDK fills parameter ``name`` of the view (the injector must not)."""
    if name is not None:
        mark(wrapper, PASSES, frozenset({*marks(wrapper).get(PASSES, ()), name}))


def conditional(view: F) -> F:
    """ETags, 304 and required ``If-Match`` for a view returning one Versioned row."""
    expected = parameter_of(view, Precondition)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.method in WRITE_METHODS:
            if not request.if_match:
                raise Problem(428, MISSING)
            if expected is not None:
                kwargs[expected] = Precondition(request.if_match)
        elif expected is not None:
            kwargs[expected] = Precondition.ANY
        return _tagged(view(*args, **kwargs))

    mark(wrapper, CONDITIONAL, True)
    passes(wrapper, expected)
    return typing.cast(F, wrapper)


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


def _tagged(result: Any) -> Any:
    """Add the ETag of the returned row; answer 304 to a matching ``If-None-Match``."""
    body, status, headers = unpack(result)
    if body is None or isinstance(body, Response) or request.method == "DELETE":
        return result
    tag = quote_etag(entity_tag(body))
    if request.method in READ_METHODS and request.if_none_match.contains_weak(tag[1:-1]):
        return Response(status=304, headers={ETAG_HEADER: tag})
    return body, status, {**headers, ETAG_HEADER: tag}
