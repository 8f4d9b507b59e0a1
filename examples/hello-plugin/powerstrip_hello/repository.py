"""The only place the hello plugin builds queries."""

from __future__ import annotations

from injector import inject
from powerstrip import Page, PageRequest, fetch_page
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

    def latest(self, paging: PageRequest) -> Page[GreetingRecord]:
        """A page of greetings, newest first."""
        order = [GreetingRecord.id.desc()]
        return fetch_page(self._session, select(GreetingRecord), paging, order=order)
