"""Business rules of the hello plugin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from injector import inject

from app import Clock, Problem
from powerstrip_hello.settings import HelloSettings


@dataclass(frozen=True, slots=True)
class Greeting:
    """A greeting and when it was made."""

    message: str
    at: datetime


class GreetingService:
    """Words greetings the way the settings say."""

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
