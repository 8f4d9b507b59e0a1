"""One pagination for every plugin: page numbers or keyset cursors, one header shape.

``@paginated`` reads the paging query parameters, hands the view a :class:`PageRequest` (a
parameter annotated so) and turns the :class:`Page` the view returns into the items (which
``@blueprint.response(200, Schema(many=True))`` serializes) plus two headers. The hello example
plugin's greetings::

    @blueprint.route("/greetings", methods=["GET"])
    @blueprint.response(200, StoredGreetingSchema(many=True))
    @paginated(max_page_size=50, keyset=True)
    def list_greetings(log: GreetingLog, paging: PageRequest) -> Page[GreetingRecord]:
        return log.latest(paging)

and in its repository, one call runs the query for either kind of page::

    order = [GreetingRecord.id.desc()]
    return fetch_page(self._session, select(GreetingRecord), paging, order=order)

Query parameters: ``page`` (from 1) and ``page_size`` (1 to the operation's maximum: a
larger one is a 422 problem naming the maximum; nothing is clamped silently). With
``keyset=True`` also ``cursor`` (an empty ``cursor=`` asks for the first keyset page, then
each answer's ``next_cursor``) and ``total=true`` (keyset pages count the matching rows
only when asked).

Every answer carries ``X-Pagination``, a JSON object: ``page_size`` always; ``page``,
``total``, ``total_pages``, ``first_page``, ``last_page`` and ``previous_page``/``next_page``
(when they exist) for page numbers; ``next_cursor`` (``null`` on the last page) and ``total``
(when asked) for keyset pages. ``Link`` (RFC 8288) carries ``first``, ``prev``, ``next`` and
``last`` for page numbers and ``first`` and ``next`` for keyset pages, each keeping the
request's other query parameters.

Cursors are opaque base64url text naming the sort order and the last row's sort values; a
cursor made for another order, or not made by this code, is a 422 problem. The order must end
in a unique column (the primary key), so that no two rows tie.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import typing
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode
from uuid import UUID

import marshmallow as ma
from flask import request
from sqlalchemy import ColumnElement, Select, and_, bindparam, false, func, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, UnaryExpression
from sqlalchemy.types import TypeDecorator

from powerstrip.db import storable
from powerstrip.http import LINK_HEADER, PAGINATION_HEADER, mark, parameter_of, passes, unpack
from powerstrip.problems import Problem

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

PAGINATED = "paginated"
MAX_PAGE = 1_000_000_000  # keeps OFFSET within every database's integer range
MAX_CURSOR_LENGTH = 2000
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page a client asked for.

    :param size: rows per page
    :param page: the page number (page-number paging)
    :param cursor: keyset paging when not ``None``: ``""`` for the first page, then the
        ``next_cursor`` of the previous page
    :param count: whether to count the matching rows (always for page numbers)
    """

    size: int
    page: int = 1
    cursor: str | None = None
    count: bool = True

    @property
    def offset(self) -> int:
        """Rows before this page (page-number paging)."""
        return (self.page - 1) * self.size


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of rows: what a paginated view returns.

    :param total: how many rows match in all (``None`` when not counted)
    :param next_cursor: the cursor of the next keyset page (``None`` on the last one)
    """

    items: Sequence[T]
    request: PageRequest
    total: int | None = None
    next_cursor: str | None = None


class PagingSchema(ma.Schema):
    """The paging query parameters; ``max_page_size`` comes from the context."""

    class Meta:
        unknown = ma.EXCLUDE

    page = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_PAGE))
    page_size = ma.fields.Integer()
    cursor = ma.fields.String(validate=ma.validate.Length(max=MAX_CURSOR_LENGTH))
    total = ma.fields.Boolean()


def paginated(
    *, max_page_size: int = 100, default_page_size: int = 20, keyset: bool = False
) -> Callable[[F], F]:
    """Page a list operation (see the module doc); the view returns a :class:`Page`."""
    if not 1 <= default_page_size <= max_page_size:
        raise ValueError("default_page_size must be between 1 and max_page_size")
    size_rule = ma.validate.Range(min=1, max=max_page_size)
    schema = PagingSchema()  # one per operation: loading keeps no state, building costs

    def decorate(view: F) -> F:
        parameter = parameter_of(view, PageRequest)
        if parameter is None:
            raise TypeError(f"{view.__qualname__} takes no parameter annotated PageRequest")

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            paging = _page_request(schema, size_rule, default_page_size, keyset=keyset)
            kwargs[parameter] = paging
            page, status, headers = unpack(view(*args, **kwargs))
            if not isinstance(page, Page):
                raise TypeError(f"{view.__qualname__} must return a Page, not {type(page)}")
            return list(page.items), status, {**headers, **page_headers(page)}

        mark(
            wrapper,
            PAGINATED,
            {
                "max_page_size": max_page_size,
                "default_page_size": default_page_size,
                "keyset": keyset,
            },
        )
        passes(wrapper, parameter)
        return typing.cast(F, wrapper)

    return decorate


def _page_request(
    schema: PagingSchema, size_rule: ma.validate.Range, default_size: int, *, keyset: bool
) -> PageRequest:
    errors: dict[str, list[str]] = {}
    try:
        values = schema.load(request.args)
    except ma.ValidationError as exc:
        errors = {str(k): list(v) for k, v in typing.cast(dict[str, Any], exc.messages).items()}
        values = {}
    size = values.get("page_size", default_size)
    try:
        size_rule(size)
    except ma.ValidationError as exc:
        errors["page_size"] = [str(message) for message in exc.messages]
    if not keyset:
        for name in ("cursor", "total"):
            if name in request.args:
                errors[name] = ["This list is paged by page number only."]
    elif "cursor" in values and "page" in values:
        errors["page"] = ["Send page or cursor, not both."]
    if errors:
        raise Problem(422, "The paging parameters are invalid.", errors=errors)
    cursor = values.get("cursor")
    return PageRequest(
        size=size,
        page=values.get("page", 1),
        cursor=cursor,
        count=cursor is None or values.get("total", False),
    )


def page_headers(page: Page[Any]) -> dict[str, str]:
    """``X-Pagination`` and ``Link`` of a page."""
    paging = page.request
    meta: dict[str, Any] = {"page_size": paging.size}
    links: dict[str, dict[str, Any]] = {}
    if paging.cursor is None:
        last = max(1, math.ceil((page.total or 0) / paging.size))
        meta.update(
            page=paging.page,
            total=page.total,
            total_pages=last,
            first_page=1,
            last_page=last,
        )
        links["first"] = {"page": 1}
        if paging.page > 1:
            meta["previous_page"] = min(paging.page - 1, last)
            links["prev"] = {"page": meta["previous_page"]}
        if paging.page < last:
            meta["next_page"] = paging.page + 1
            links["next"] = {"page": paging.page + 1}
        links["last"] = {"page": last}
    else:
        meta["next_cursor"] = page.next_cursor
        if page.total is not None:
            meta["total"] = page.total
        links["first"] = {"cursor": ""}
        if page.next_cursor is not None:
            links["next"] = {"cursor": page.next_cursor}
    # Relative references (RFC 8288 allows them): no Host header or proxy setup in them. The
    # request's other parameters first, encoded once for every link.
    kept = urlencode(
        [(k, v) for k, v in request.args.items(multi=True) if k not in {"page", "cursor"}]
    )
    base = f"{request.path}?{kept}&" if kept else f"{request.path}?"
    link = ", ".join(f'<{base}{urlencode(changes)}>; rel="{rel}"' for rel, changes in links.items())
    return {PAGINATION_HEADER: _COMPACT_JSON.encode(meta), LINK_HEADER: link}


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps's, built once


def fetch_page(
    session: Session,
    query: Select[T],  # select(Model): the rows are models
    paging: PageRequest,
    *,
    order: Sequence[ColumnElement[Any]],
    params: Mapping[str, Any] | None = None,
) -> Page[T]:
    """Run ``query`` for one page, ordered by ``order`` (columns, ``.asc()`` or ``.desc()``);
    ``params``: values of the query's :func:`~sqlalchemy.bindparam` parameters, if any.

    Page numbers: one COUNT and one OFFSET query. Keyset: one query for the rows after the
    cursor, and a COUNT only when ``paging.count``. A list whose query has the same shape on
    every request pages it with a :class:`PageQuery` kept from one request to the next.
    """
    return PageQuery(query, order=order).fetch(session, paging, params)


_LIMIT, _OFFSET, _AFTER = "powerstrip_page_limit", "powerstrip_page_offset", "powerstrip_after_"


class PageQuery(Generic[T]):
    """``query`` paged by ``order`` as :func:`fetch_page` pages it, its statements built once.

    :func:`fetch_page` builds the paged statements on every call, and SQLAlchemy then works
    out each one's cache key again (on a list of 20 tasks, about a twentieth of the request's
    CPU). For a list whose query has the same shape on every request, build the query once,
    with :func:`~sqlalchemy.bindparam` wherever a value changes, keep its ``PageQuery`` (a
    module constant, or one cached per shape of the query) and pass the values to
    :meth:`fetch`::

        _BY_NAME = PageQuery(
            select(GreetingRecord).where(GreetingRecord.name == bindparam("name")),
            order=[GreetingRecord.id.desc()],
        )
        page = _BY_NAME.fetch(session, paging, {"name": name})

    Parameter names starting ``powerstrip_`` are the paging's own. Safe to share between
    threads.
    """

    def __init__(self, query: Select[T], *, order: Sequence[ColumnElement[Any]]) -> None:
        self._query = query
        self._order = tuple(order)
        self._keys = tuple(_Key.of(element) for element in self._order)
        self._keyset_checked = False
        # Each statement built when first needed (fetch_page's one-off PageQuery builds one
        # or two). Not functools.cached_property: on Python 3.11 it takes one lock shared by
        # every instance. Two threads may both build a statement the first time: either does.
        self._built: dict[str, Select[Any]] = {}

    def fetch(
        self, session: Session, paging: PageRequest, params: Mapping[str, Any] | None = None
    ) -> Page[T]:
        """One page of the query's rows; ``params``: its bind parameters' values."""
        values = dict(params or {})
        if paging.cursor is not None and not self._keyset_checked:
            for key in self._keys:
                key.check_keyset()  # a programming error: raised before any query
            self._keyset_checked = True
        if paging.cursor:  # a malformed cursor is refused before any query too
            after = _decode(paging.cursor, self._keys)
            values.update((f"{_AFTER}{index}", value) for index, value in enumerate(after))
        total = None
        if paging.count:
            total = session.scalar(self._statement("count"), values) or 0
        if paging.cursor is None:
            values[_OFFSET], values[_LIMIT] = paging.offset, paging.size
            rows = session.scalars(self._statement("numbered"), values).all()
            return Page(rows, paging, total)
        values[_LIMIT] = paging.size + 1  # one more: whether a next page exists
        statement = self._statement("following" if paging.cursor else "first")
        rows = session.scalars(statement, values).all()
        more = len(rows) > paging.size
        rows = rows[: paging.size]
        next_cursor = _encode(self._keys, rows[-1]) if more else None
        return Page(rows, paging, total, next_cursor)

    def _statement(self, name: str) -> Select[Any]:
        statement = self._built.get(name)
        if statement is None:
            statement = self._built[name] = self._build(name)
        return statement

    def _build(self, name: str) -> Select[Any]:
        if name == "count":
            return select(func.count()).select_from(self._query.order_by(None).subquery())
        ordered = self._query.order_by(*self._order)
        limit: BindParameter[int] = bindparam(_LIMIT)
        if name == "numbered":
            return ordered.offset(bindparam(_OFFSET)).limit(limit)
        if name == "first":
            return ordered.limit(limit)
        after: list[BindParameter[Any]] = [
            bindparam(f"{_AFTER}{index}") for index in range(len(self._keys))
        ]
        return ordered.where(_after(self._keys, after)).limit(limit)


@dataclass(frozen=True, slots=True)
class _Key:
    column: ColumnElement[Any]
    descending: bool

    @classmethod
    def of(cls, element: ColumnElement[Any]) -> _Key:
        if isinstance(element, UnaryExpression) and element.modifier in (
            operators.desc_op,
            operators.asc_op,
        ):
            return cls(element.element, element.modifier is operators.desc_op)
        return cls(element, False)

    @property
    def python_type(self) -> type:
        sql_type = self.column.type
        if isinstance(sql_type, TypeDecorator):  # UtcDateTime: its implementation's type
            sql_type = sql_type.impl_instance
        kind: type = sql_type.python_type
        return kind

    def check_keyset(self) -> None:
        """Refuse, as a programming error, an order keyset paging cannot follow."""
        if getattr(self.column, "nullable", False):
            raise TypeError(f"keyset paging by {self.signature()[:-1]}: the column is nullable")
        if self.python_type not in _PARSERS:
            raise TypeError(
                f"keyset paging by {self.signature()[:-1]}: {self.python_type.__name__} "
                "values cannot be in a cursor"
            )

    def value_of(self, row: object) -> Any:
        model = typing.cast(Hashable, type(row))  # mypy finds classes unhashable
        return getattr(row, _attribute(model, self.column))

    def signature(self) -> str:
        table = getattr(getattr(self.column, "table", None), "name", "")
        return (
            f"{table}.{getattr(self.column, 'key', self.column)}{'-' if self.descending else '+'}"
        )


# Both memoized: pure functions of a model class or an order, which a process has few of.
@functools.lru_cache(maxsize=1024)
def _attribute(model: Any, column: ColumnElement[Any]) -> str:  # model: a mapped class
    """The name of ``model``'s attribute mapped to ``column``."""
    return str(sa_inspect(model).get_property_by_column(column).key)


@functools.lru_cache(maxsize=1024)
def _order_id(keys: tuple[_Key, ...]) -> str:
    spec = ",".join(key.signature() for key in keys)
    return hashlib.blake2b(spec.encode(), digest_size=6).hexdigest()


def _encode(keys: tuple[_Key, ...], row: object) -> str:
    values = []
    for key in keys:
        value = key.value_of(row)
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, Decimal | UUID):
            value = str(value)
        values.append(value)
    raw = json.dumps({"o": _order_id(keys), "v": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _invalid() -> Problem:
    return Problem(
        422,
        "The cursor is not valid for this list.",
        errors={"cursor": ["Use a next_cursor this list returned, with the same sort."]},
    )


def _decode(cursor: str, keys: tuple[_Key, ...]) -> list[Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("o") != _order_id(keys):
            raise _invalid()
        values = data["v"]
        if not isinstance(values, list) or len(values) != len(keys):
            raise _invalid()
        return [_parse(value, key.python_type) for value, key in zip(values, keys, strict=True)]
    except (ValueError, KeyError, TypeError, OverflowError, ArithmeticError, binascii.Error):
        raise _invalid() from None


def _refused() -> ValueError:
    return ValueError("not a cursor value of this column")


def _text(value: Any) -> str:
    # A cursor is base64: text the host's input guard refuses would hide in it.
    if not isinstance(value, str) or not storable(value):
        raise _refused()
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _refused()
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise _refused()
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refused()
    return float(value)


def _moment(value: Any) -> datetime:
    moment = datetime.fromisoformat(_text(value))
    if moment.tzinfo is None:  # every cursor this code writes is aware (UtcDateTime)
        raise _refused()
    return moment.astimezone(UTC)  # OverflowError at the edges of time: refused too


def _decimal(value: Any) -> Decimal:
    number = Decimal(_text(value))
    if not number.is_finite():
        raise _refused()
    return number


_PARSERS: dict[type, Callable[[Any], Any]] = {
    bool: _boolean,
    int: _integer,
    float: _float,
    str: _text,
    datetime: _moment,
    date: lambda value: date.fromisoformat(_text(value)),
    Decimal: _decimal,
    UUID: lambda value: UUID(_text(value)),
}


def _parse(value: Any, kind: type) -> Any:
    """A cursor value as the column's Python type; ValueError when it is not one."""
    parser = _PARSERS.get(kind)
    if parser is None:
        raise _refused()
    return parser(value)


def _after(keys: Sequence[_Key], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order of ``keys`` (lexicographic)."""
    clauses = []
    for index, key in enumerate(keys):
        equal = [k.column == v for k, v in zip(keys[:index], values[:index], strict=True)]
        step = key.column < values[index] if key.descending else key.column > values[index]
        clauses.append(and_(*equal, step))
    return or_(false(), *clauses)
