"""Host contracts: what the host provides to every plugin through dependency injection."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """What time is it: inject this instead of calling ``datetime.now`` so tests can fix time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)
