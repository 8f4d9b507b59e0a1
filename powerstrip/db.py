"""Persistence contracts: the shared model base, the UTC timestamp type, the unit of work.

- :class:`Model` is the typed declarative base every plugin's models derive from: one shared
  ``MetaData`` with a naming convention, so constraint names are stable across databases and
  migrations. A plugin's tables are named ``<plugin>_<name>`` (the host checks it).
- :class:`Versioned` gives a model optimistic concurrency and ETags (see ``@conditional``).
- :class:`UtcDateTime` stores and returns timezone-aware UTC timestamps on every database.
- A string longer than its column (``String(64)``) is refused on every database with a 422
  problem naming the attribute, before the row is written: PostgreSQL refuses it anyway, and
  SQLite would store it whole.
- :class:`UnitOfWork` commits or rolls back a block as a whole, and delivers the domain events
  published inside it only after the commit.

The host binds ``sqlalchemy.orm.Session`` per request (and per CLI command) and closes it at
the end; a plugin's repository asks for that ``Session``, its services for a ``UnitOfWork``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar

import injector
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Table,
    event,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Mapper,
    Session,
    declared_attr,
    mapped_column,
)
from sqlalchemy.types import TypeDecorator

from powerstrip.events import EventBus
from powerstrip.problems import Problem

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp column on every database.

    SQLite hands back naive datetimes even for ``DateTime(timezone=True)``; this type stores
    aware values as UTC and always returns aware UTC values, so no caller has to guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (Clock.now() is)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Model(DeclarativeBase):
    """Base class of every plugin's SQLAlchemy models (typed, ``Mapped[...]``).

    ``Mapped[int]`` columns are 64-bit (``BIGINT``; ``INTEGER`` on SQLite, where it is 64-bit).
    Integer primary keys are never reused on SQLite (``AUTOINCREMENT``), as on PostgreSQL: an
    id a client once saw never names another row. A model that sets its own ``__table_args__``
    keeps this by including :meth:`table_args` (``{**Model.table_args(), ...}``).
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # ``Mapped[int]`` is 64-bit on every database, as the host's ``<int:...>`` path converter
    # is: an id a route accepts always fits its column (PostgreSQL's INTEGER would refuse ids
    # from 2**31 on). SQLite keeps INTEGER, whose primary key is the 64-bit rowid.
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: BigInteger().with_variant(Integer(), "sqlite")
    }

    @staticmethod
    def table_args() -> dict[str, Any]:
        """The table options every model's table gets."""
        return {"sqlite_autoincrement": True}

    @declared_attr.directive
    def __table_args__(cls) -> dict[str, Any]:  # noqa: N805 - a class-level directive
        return Model.table_args()


TOO_LONG = "A value is longer than what it is stored in holds; shorten it."


@event.listens_for(Model, "before_insert", propagate=True)
@event.listens_for(Model, "before_update", propagate=True)
def _refuse_strings_longer_than_their_columns(
    mapper: Mapper[Any],
    connection: Connection,  # noqa: ARG001 - the event's signature
    target: Any,
) -> None:
    """Raise a 422 :class:`Problem` for a string attribute longer than its column's length."""
    values = target.__dict__
    _refuse_too_long(
        (attribute.key, attribute.columns[0], values.get(attribute.key))
        for attribute in mapper.column_attrs
    )


def storable(text: str) -> bool:
    """Whether every database can store ``text``: no NUL (PostgreSQL refuses it) and no lone
    surrogate (not UTF-8). The host refuses other text in query strings and bodies."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a \ud800 escape
        return False
    return True


def refuse_long_strings(table: Table, values: Mapping[str, Any]) -> None:
    """Raise the 422 :class:`Problem` a model's INSERT or UPDATE raises for a string longer
    than its column, for ``values`` a Core statement writes into ``table`` (it fires no ORM
    event): ``refuse_long_strings(Note.__table__, values)`` before ``insert(...)``."""
    columns = table.c
    unknown = values.keys() - columns.keys()
    if unknown:  # a misspelt column: the INSERT would drop its value without a word
        raise KeyError(", ".join(sorted(unknown)))
    _refuse_too_long(  # only text has a length to exceed: a number or a date is not looked up
        (name, columns[name], value) for name, value in values.items() if type(value) is str
    )


def _refuse_too_long(written: Iterable[tuple[str, ColumnElement[Any], Any]]) -> None:
    errors = {}
    for name, column, value in written:
        if type(value) is not str:
            continue
        length = getattr(column.type, "length", None)
        if length is not None and len(value) > length:
            errors[name] = [f"Longer than {length} characters."]
    if errors:
        raise Problem(422, TOO_LONG, errors=errors)


class Versioned:
    """Mixin of a model whose rows change under optimistic concurrency (and carry an ETag).

    ``version`` starts at 1 and SQLAlchemy bumps it on every UPDATE, whose WHERE clause names
    the version the row was read at: a write racing another commit matches no row and raises
    ``StaleDataError``, which the host answers with a 412 problem. ``@conditional`` derives the
    row's ETag from it::

        class Note(Versioned, Model):
            __tablename__ = "notes_notes"
            id: Mapped[int] = mapped_column(primary_key=True)
    """

    version: Mapped[int] = mapped_column(Integer, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - a class-level directive
        table = cls.__table__  # type: ignore[attr-defined]
        return {"version_id_col": table.c.version}


class UnitOfWork:
    """Commit or roll back a block as a whole; publish its events only after the commit.

    Use::

        with uow as session:
            session.add(task)
            events.publish(TaskCreated(task.id))

    The block commits when it ends normally and rolls back when it raises (a failing commit
    rolls back too); events published inside reach subscribers only after the commit. Blocks
    nest: an inner block (a service called by another service) joins the outer one, which
    alone commits or rolls back.
    """

    @injector.inject
    def __init__(self, session: Session, events: EventBus) -> None:
        self.session = session
        self._events = events
        self._blocks: list[AbstractContextManager[Session]] = []

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        if self._blocks:  # joined by an outer block: it decides
            with self._events.deferred():
                yield self.session
            return
        with self._events.deferred():
            try:
                yield self.session
                self.session.commit()
            except BaseException:
                self.session.rollback()
                raise

    def __enter__(self) -> Session:
        block = self._transaction()
        session = block.__enter__()
        self._blocks.append(block)
        return session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return self._blocks.pop().__exit__(exc_type, exc, traceback)
