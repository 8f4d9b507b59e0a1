"""Conditional requests (RFC 9110 section 13): ETags, ``If-None-Match`` and ``If-Match``.

A model that derives from :class:`~powerstrip.db.Versioned` has a version SQLAlchemy bumps on
every UPDATE and checks in the UPDATE's WHERE clause; its :func:`entity_tag` is derived from
that version. ``@conditional`` on a view that returns such a row then:

- sets ``ETag`` on the answer of GET, HEAD, POST, PUT and PATCH;
- answers a GET or HEAD whose ``If-None-Match`` names the current tag 304, with no body
  (weak comparison, ``*`` matches);
- requires ``If-Match`` on PUT, PATCH and DELETE: without it, a 428 problem before the view
  runs; one that is not ``*`` or a list of entity tags (:data:`IF_MATCH_PATTERN`, RFC 9110's
  grammar, which the document states) is a 400 problem, never a guess; with it, the view
  receives a :class:`Precondition` (a parameter annotated so) and hands it to the service,
  which calls :meth:`Precondition.check` on the row it loaded before changing it: a 412
  problem unless a tag matches (strong comparison; ``*`` matches any current row). A commit
  by someone else between that check and the write still answers 412: the versioned UPDATE
  matches no row, and the host turns SQLAlchemy's ``StaleDataError`` into the same 412
  problem.

The service sees a domain-level guard, never a header (the tasks plugin's ``patch_task``)::

    @blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["PATCH"])
    @blueprint.arguments(TaskPatchSchema())
    @blueprint.response(200, TaskSchema)
    @requires(USE)
    @conditional
    def patch_task(body, project_id, task_id, tasks: TaskService, principal: Principal,
                   expected: Precondition) -> Task:
        return tasks.update(principal, project_id, task_id, body, expected, replace=False)

The host documents all of it in the OpenAPI document (the ``ETag`` header, the
``If-None-Match`` and ``If-Match`` parameters, the 304, 412 and 428 answers).
"""

from __future__ import annotations

import functools
import hashlib
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Response, request
from werkzeug.datastructures import ETags
from werkzeug.http import quote_etag

from powerstrip.http import (
    ETAG_HEADER,
    current_request,
    mark,
    parameter_of,
    passes,
    unpack,
)
from powerstrip.problems import Problem

F = TypeVar("F", bound=Callable[..., Any])

CONDITIONAL = "conditional"
READ_METHODS = frozenset({"GET", "HEAD"})
WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
STALE = "The resource changed since you read it: read it again and retry with its ETag."
MISSING = "Send If-Match with the ETag you last read (or * to accept any version)."
MALFORMED = 'If-Match must be * or a list of entity tags ("..." or W/"...").'
# RFC 9110 section 13.1.1: "*" or 1#entity-tag, entity-tag = [W/] DQUOTE *etagc DQUOTE.
_ETAGC = "[\\x21\\x23-\\x7e\\x80-\\xff]"
_ENTITY_TAG = f'(W/)?"{_ETAGC}*"'
IF_MATCH_PATTERN = f"^(\\*|{_ENTITY_TAG}([ \\t]*,[ \\t]*{_ENTITY_TAG})*)$"
_IF_MATCH = re.compile(IF_MATCH_PATTERN)
CACHE_CONTROL = "private, no-cache"  # a browser may keep it, and must revalidate (If-None-Match)


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

    A view decorated ``@conditional`` receives the request's ``If-Match`` (and
    ``If-None-Match``) as one and must hand it to the service, which calls :meth:`check` on
    the row before changing it; the decorator refuses a write that returns without having
    checked. A CLI or another service that writes unconditionally passes :meth:`any`.
    """

    tags: ETags
    none_match: ETags = field(default_factory=ETags)
    _checked: list[bool] = field(default_factory=lambda: [False], compare=False, repr=False)

    @classmethod
    def any(cls) -> Precondition:
        """No condition: any current version of the row."""
        return cls(ETags(star_tag=True))

    @property
    def checked(self) -> bool:
        """Whether :meth:`check` ran."""
        return self._checked[0]

    def check(self, resource: object) -> None:
        """Raise a 412 problem unless ``resource`` is still a version the writer read.

        ``If-Match`` compares strongly (``*``: any row); ``If-None-Match`` weakly (``*``: the
        row must not exist, so it always fails here).
        """
        tag = entity_tag(resource)
        self._checked[0] = True
        if not self.tags.contains(tag) or self.none_match.contains_weak(tag):
            raise Problem(412, STALE)


def conditional(view: F) -> F:
    """ETags, 304 and required ``If-Match`` for a view returning one Versioned row."""
    expected = parameter_of(view, Precondition)
    name = view.__qualname__

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.method not in WRITE_METHODS:
            if expected is not None:
                kwargs[expected] = Precondition.any()
            return _tagged(view(*args, **kwargs))
        raw = request.headers.get("If-Match", "")
        if not raw:
            raise Problem(428, MISSING)
        if not _IF_MATCH.fullmatch(raw):
            raise Problem(400, MALFORMED)
        if expected is None:
            raise RuntimeError(f"{name} is @conditional but takes no Precondition parameter")
        precondition = Precondition(request.if_match, request.if_none_match)
        kwargs[expected] = precondition
        result = view(*args, **kwargs)
        if not precondition.checked:
            raise RuntimeError(f"{name} returned without checking its Precondition")
        return _tagged(result)

    mark(wrapper, CONDITIONAL, {"precondition": expected})
    passes(wrapper, expected)
    return typing.cast(F, wrapper)


def _tagged(result: Any) -> Any:
    """Add the ETag of the returned row; evaluate a read's ``If-Match``/``If-None-Match``."""
    body, status, headers = unpack(result)
    handled = current_request()
    if body is None or isinstance(body, Response) or handled.method == "DELETE":
        return result
    tag = entity_tag(body)
    headers[ETAG_HEADER] = quote_etag(tag)
    if handled.method in READ_METHODS:
        headers.setdefault("Cache-Control", CACHE_CONTROL)
        if handled.if_match and not handled.if_match.contains(tag):
            raise Problem(412, STALE)
        if handled.if_none_match.contains_weak(tag):
            return Response(status=304, headers=headers)
    return body, status, headers
