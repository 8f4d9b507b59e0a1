"""Host contracts: what the host provides to every plugin through dependency injection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


class Clock:
    """What time is it: inject this instead of calling ``datetime.now`` so tests can fix time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A dependency the readiness probe checks: ``probe()`` raises if it is down.

    Contribute checks from an injector module, so they get their collaborators injected::

        class DatabaseModule(injector.Module):
            @injector.multiprovider
            def health_checks(self, engine: Engine) -> list[HealthCheck]:
                return [HealthCheck("database", lambda: ping(engine))]

    A probe must bound its own time (a connect timeout): readiness waits for it.
    """

    name: str
    probe: Callable[[], None]
