"""Business rules of the hello plugin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from injector import inject
from powerstrip import Clock, EventBus, Page, PageRequest, Problem, UnitOfWork

from powerstrip_hello.models import GreetingRecord
from powerstrip_hello.repository import GreetingRepository
from powerstrip_hello.settings import HelloSettings


@dataclass(frozen=True, slots=True)
class Greeting:
    """A greeting and when it was made."""

    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Greeted:
    """Domain event: someone was greeted and the greeting stored."""

    greeting_id: int
    name: str


class GreetingService:
    """Words greetings the way the settings say, and keeps the ones asked to be kept."""

    @inject
    def __init__(self, settings: HelloSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    def greet(self, name: str) -> Greeting:
        """Greet ``name``; a name too long for the settings is a 422 problem."""
        name = name.strip()
        if not name or len(name) > self._settings.MAX_NAME_LENGTH:
            raise Problem(
                422,
                f"A name must be 1 to {self._settings.MAX_NAME_LENGTH} characters.",
                errors={"name": ["Invalid length."]},
            )
        message = f"{self._settings.GREETING}, {name}{self._settings.PUNCTUATION}"
        return Greeting(message=message, at=self._clock.now())


class GreetingLog:
    """Stores greetings (one unit of work each) and lists the latest."""

    @inject
    def __init__(
        self,
        greetings: GreetingService,
        repository: GreetingRepository,
        uow: UnitOfWork,
        events: EventBus,
    ) -> None:
        self._greetings = greetings
        self._repository = repository
        self._uow = uow
        self._events = events

    def record(self, name: str) -> GreetingRecord:
        """Greet ``name`` and store the greeting; publishes :class:`Greeted` after commit."""
        greeting = self._greetings.greet(name)
        with self._uow:
            stored = self._repository.add(
                GreetingRecord(name=name.strip(), message=greeting.message, created_at=greeting.at)
            )
            self._events.publish(Greeted(greeting_id=stored.id, name=stored.name))
        return stored

    def get(self, greeting_id: int) -> GreetingRecord:
        """A stored greeting, or a 404 problem."""
        record = self._repository.get(greeting_id)
        if record is None:
            raise Problem(404, "No such greeting.")
        return record

    def latest(self, paging: PageRequest) -> Page[GreetingRecord]:
        """A page of the stored greetings, newest first."""
        return self._repository.latest(paging)
