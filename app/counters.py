"""Fixed-window rate-limit counters in this process's memory, expired lazily.

``limits``' own ``MemoryStorage`` expires its keys from a ``threading.Timer`` that it starts
again every 10 ms while anything counts: under load a new thread every few requests, which
cost the list of tasks about a twentieth of its CPU in process (``bench/inprocess.py``). This
storage keeps each counter with its window's end instead: a counter past its end reads as zero
and restarts on the next hit. Expired counters are dropped as later hits go by, oldest first
(the windows of one length end in the order they started), so memory holds the running windows
and no more, and no hit ever scans them all. It implements what the fixed-window strategy (the
limiter's) uses, not the moving window.

``app.ratelimit`` gives it ``memory://`` URIs; it registers itself with ``limits`` under the
scheme ``powerstrip-memory`` (``limits`` finds storages by scheme, the way it documents for
custom storages).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from limits.storage import Storage

SCHEME = "powerstrip-memory"


class LazyMemoryStorage(Storage):
    """Counters in a dict, each beside the end of its window; no thread."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 - limits declares it a plain attribute

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._lock = threading.Lock()
        self._counters: dict[str, list[float]] = {}  # key -> [count, end of its window]
        # Per window length, (end, key) of each window started, in the order they end.
        self._ends: dict[float, deque[tuple[float, str]]] = {}

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    @property
    def storage(self) -> str:
        """What ``flask limiter config`` shows as the storage's client."""
        return f"{len(self._counters)} counters in this process's memory"

    @property
    def held(self) -> int:
        """Counters held, expired ones not yet dropped included. (Not ``__len__``: an empty
        storage would be false, and flask-limiter tests its storage for truth.)"""
        return len(self._counters)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s counter, starting a window of ``expiry`` seconds if it
        has none running; the new count."""
        now = time.time()
        with self._lock:
            self._expire(now)
            counter = self._counters.get(key)
            if counter is None or counter[1] <= now:
                end = now + expiry
                counter = self._counters[key] = [0, end]
                self._ends.setdefault(expiry, deque()).append((end, key))
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
            self._ends.clear()
        return count

    def clear(self, key: str) -> None:
        """Forget ``key``'s counter."""
        with self._lock:
            self._counters.pop(key, None)

    def _expire(self, now: float) -> None:
        """Drop the counters whose windows have ended (under the lock): the front of each
        length's queue, until a window still running. An entry whose key has started a new
        window since (or was cleared) is only dropped from the queue."""
        for ends in self._ends.values():
            while ends and ends[0][0] <= now:
                end, key = ends.popleft()
                counter = self._counters.get(key)
                if counter is not None and counter[1] == end:
                    del self._counters[key]
