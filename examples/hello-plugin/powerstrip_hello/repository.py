"""The only place the hello plugin builds queries."""

from __future__ import annotations

from collections.abc import Sequence

from injector import inject
from sqlalchemy import select
from sqlalchemy.orm import Session

from powerstrip_hello.models import GreetingRecord


class GreetingRepository:
    """Stores and lists greetings in the request's session."""

    @inject
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, record: GreetingRecord) -> GreetingRecord:
        """Stage a greeting; the unit of work commits it."""
        self._session.add(record)
        self._session.flush()
        return record

    def get(self, greeting_id: int) -> GreetingRecord | None:
        """A greeting by id."""
        return self._session.get(GreetingRecord, greeting_id)

    def latest(self, limit: int) -> Sequence[GreetingRecord]:
        """The most recent greetings, newest first."""
        query = select(GreetingRecord).order_by(GreetingRecord.id.desc()).limit(limit)
        return self._session.scalars(query).all()
