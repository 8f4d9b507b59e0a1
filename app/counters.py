"""Fixed-window rate-limit counters in this process's memory, expired lazily.

``limits``' own ``MemoryStorage`` expires its keys from a ``threading.Timer`` that it starts
again every 10 ms while anything counts: under load a new thread every few requests, which
cost the list of tasks about a tenth of its CPU in process (``bench/inprocess.py``). This
storage keeps each counter with its window's end instead: a counter past its end reads as
zero and restarts on the next hit, and expired counters are swept out, under the same lock,
at most once per ``SWEEP_SECONDS``, so memory holds only the windows of the last minute or
so. It implements what the fixed-window strategy uses (the limiter's strategy), not the
moving window.

``app.ratelimit`` gives it ``memory://`` URIs; it registers itself with ``limits`` under the
scheme ``powerstrip-memory`` (``limits`` finds storages by scheme, the way it documents for
custom storages).
"""

from __future__ import annotations

import threading
import time

from limits.storage import Storage

SCHEME = "powerstrip-memory"
SWEEP_SECONDS = 10.0


class LazyMemoryStorage(Storage):
    """Counters in a dict, each beside the end of its window; no thread."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 - limits declares it a plain attribute

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._lock = threading.Lock()
        self._counters: dict[str, list[float]] = {}  # key -> [count, end of its window]
        self._next_sweep = time.time() + SWEEP_SECONDS

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s counter, starting a window of ``expiry`` seconds if it
        has none running; the new count."""
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            counter = self._counters.get(key)
            if counter is None or counter[1] <= now:
                counter = self._counters[key] = [0, now + expiry]
            counter[0] += amount
            return int(counter[0])

    def get(self, key: str) -> int:
        """``key``'s count in its running window (0 if none runs)."""
        counter = self._counters.get(key)
        if counter is None or counter[1] <= time.time():
            return 0
        return int(counter[0])

    def get_expiry(self, key: str) -> float:
        """When ``key``'s window ends (now if none runs)."""
        now = time.time()
        counter = self._counters.get(key)
        if counter is None or counter[1] <= now:
            return now
        return counter[1]

    def check(self) -> bool:
        """Always healthy: there is nothing to reach."""
        return True

    def reset(self) -> int | None:
        """Forget every counter; how many there were."""
        with self._lock:
            count = len(self._counters)
            self._counters.clear()
        return count

    def clear(self, key: str) -> None:
        """Forget ``key``'s counter."""
        with self._lock:
            self._counters.pop(key, None)

    @property
    def held(self) -> int:
        """Counters held, expired ones not yet swept included. (Not ``__len__``: an empty
        storage would be false, and flask-limiter tests its storage for truth.)"""
        return len(self._counters)

    def _sweep(self, now: float) -> None:
        expired = [key for key, (_, end) in self._counters.items() if end <= now]
        for key in expired:
            del self._counters[key]
        self._next_sweep = now + SWEEP_SECONDS
