"""The owner look-ups of authentication, kept for ``PRINCIPAL_CACHE_SECONDS`` (default 0: none).

Every authenticated request looks up the owner of its bearer token (the user, and whether the
token was revoked) or of its API key. With a window of N seconds, a worker keeps each
look-up that let a request in for N seconds and answers the same credentials from it: one
indexed query fewer per request, in exchange for a revocation, a password change, a
deactivation or a role change taking up to N seconds to reach every worker (each keeps its
own look-ups, and no worker hears of another's changes, not even its own). A look-up that
refuses (an unknown or revoked credential, a wrong secret, a deactivated owner) is never
kept, so it is asked again on the next request. The window counts from the look-up, on a
monotonic clock: using a credential, or recording an API key's use, neither lengthens nor
restarts it, and neither does the system clock being set back. Each worker records a kept
key's use at most once a minute (it knows only its own records until its next look-up).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from plugins.accounts.repository import BearerOwner, KeyAndOwner

V = TypeVar("V")

# The look-ups a worker keeps at most: a few MiB however many clients call within a window.
MAX_LOOKUPS = 10_000


class LookupCache(Generic[V]):
    """Values kept for ``seconds`` from the moment they were looked up, at most ``size`` at
    once; a window of 0 keeps nothing (``get`` is always None, ``put`` and ``replace`` do
    nothing).

    Every value has the same window, so values expire in about the order they were put in
    (each from its look-up, so a slow look-up's may expire before values put ahead of it):
    each :meth:`put` first drops the expired values at the front of that order, and when the
    cache is still full keeps the new value not at all (the values kept go on being answered
    until they expire). Safe to share between threads: reads are single ``dict`` look-ups,
    writes take a lock.
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
        # key -> (end of window, value), in the order put
        self._kept: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def seconds(self) -> float:
        """The window: how long a value is answered after it was looked up."""
        return self._seconds

    def now(self) -> float:
        """The time on the cache's clock: take it before a look-up, to :meth:`put` its
        answer with."""
        return self._timer()

    def get(self, key: Hashable) -> V | None:
        """The value kept under ``key`` while in its window, else None."""
        if not self._seconds:
            return None
        found = self._kept.get(key)
        if found is None or found[0] <= self._timer():
            return None
        return found[1]

    def put(self, key: Hashable, value: V, since: float) -> None:
        """Keep ``value``, looked up at ``since`` (:meth:`now`), under ``key`` until the
        window from ``since`` ends (not at all when it has ended already). When ``key`` holds
        a value still in its window (another thread's look-up), ``value`` takes its place
        until that window ends, if it was not looked up before it: putting never lengthens a
        window, nor gives a look-up a later one's."""
        if not self._seconds:
            return
        ends = since + self._seconds
        with self._lock:
            kept = self._kept
            now = self._timer()
            if ends <= now:
                return
            found = kept.get(key)
            if found is not None:
                if found[0] > now:
                    if ends >= found[0]:
                        kept[key] = (found[0], value)
                    return
                del kept[key]  # put again at the end
            while kept and next(iter(kept.values()))[0] <= now:  # expired, at the front
                kept.popitem(last=False)
            if len(kept) < self._size:
                kept[key] = (ends, value)

    def replace(self, key: Hashable, old: V, new: V) -> None:
        """Put ``new`` in ``old``'s place and window, only while ``key`` holds ``old`` in its
        window: never a window of its own, never over a newer look-up."""
        if not self._seconds:
            return
        with self._lock:
            found = self._kept.get(key)
            if found is not None and found[1] is old and found[0] > self._timer():
                self._kept[key] = (found[0], new)

    def __len__(self) -> int:
        return len(self._kept)


class OwnerLookups:
    """A worker's kept look-ups (one per app: bound as a singleton): the owners of bearer
    tokens, by user id, token id and token version, and API keys with their owners, by key
    prefix."""

    def __init__(self, seconds: float, timer: Callable[[], float] = time.monotonic) -> None:
        self.bearer: LookupCache[BearerOwner] = LookupCache(seconds, timer=timer)
        self.api_keys: LookupCache[KeyAndOwner] = LookupCache(seconds, timer=timer)
