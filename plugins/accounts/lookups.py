"""The owner look-ups of authentication, kept for ``PRINCIPAL_CACHE_SECONDS`` (default 0: none).

Every authenticated request looks up the owner of its bearer token (the user, and whether the
token was revoked) or of its API key. With a window of N seconds, a worker keeps each
look-up that let a request in for N seconds and answers the same credentials from it: one
indexed query fewer per request, in exchange for a revocation, a password change, a
deactivation or a role change taking up to N seconds to reach every worker (each keeps its
own look-ups, and no worker hears of another's changes, not even its own). A look-up that
refuses (an unknown or revoked credential, a deactivated owner) is never kept, so it is asked
again on the next request. The window counts from the look-up, on a monotonic clock: using
a credential does not lengthen it, and neither does the system clock being set back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from plugins.accounts.repository import BearerOwner, KeyAndOwner

V = TypeVar("V")

# The look-ups a worker keeps at most: a few MiB however many clients call within a window.
MAX_LOOKUPS = 10_000


class LookupCache(Generic[V]):
    """Values kept for ``seconds`` after they were put, at most ``size`` at once; a window of
    0 keeps nothing (``get`` is always None and ``put`` does nothing).

    When full, :meth:`put` of a new key first drops every value past its window and, if none
    was, keeps the new value not at all: the values kept go on being answered until they
    expire. Safe to share between threads: reads are single ``dict`` look-ups, writes take a
    lock.
    """

    def __init__(
        self,
        seconds: float,
        size: int = MAX_LOOKUPS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._size = size
        self._timer = timer
        self._kept: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    @property
    def seconds(self) -> float:
        """The window: how long a value is answered after it was put."""
        return self._seconds

    def get(self, key: Hashable) -> V | None:
        """The value put under ``key`` less than the window ago, else None."""
        if not self._seconds:
            return None
        found = self._kept.get(key)
        if found is None or found[0] <= self._timer():
            return None
        return found[1]

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` under ``key`` for the window from now; or, when ``key`` holds a
        value still in its window, in its place until that window ends (putting never
        lengthens a window: what was looked up is answered at most the window)."""
        if not self._seconds:
            return
        now = self._timer()
        with self._lock:
            found = self._kept.get(key)
            if found is not None and found[0] > now:
                self._kept[key] = (found[0], value)
                return
            if found is None and len(self._kept) >= self._size:
                self._kept = {k: kept for k, kept in self._kept.items() if kept[0] > now}
                if len(self._kept) >= self._size:
                    return
            self._kept[key] = (now + self._seconds, value)

    def __len__(self) -> int:
        return len(self._kept)


class OwnerLookups:
    """A worker's kept look-ups (one per app: bound as a singleton): the owners of bearer
    tokens, by user id and token id, and API keys with their owners, by key prefix."""

    def __init__(self, seconds: float, timer: Callable[[], float] = time.monotonic) -> None:
        self.bearer: LookupCache[BearerOwner] = LookupCache(seconds, timer=timer)
        self.api_keys: LookupCache[KeyAndOwner] = LookupCache(seconds, timer=timer)
