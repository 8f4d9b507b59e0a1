"""Domain events: typed publish/subscribe, delivered after the unit of work commits.

Events are plain (preferably frozen dataclass) objects; a subscriber registered for a class
receives instances of it and of its subclasses. Inside :meth:`EventBus.deferred` (which the
unit of work opens around each transaction) published events wait: they are delivered when
the block ends normally and dropped if it raises, so no subscriber hears of work that rolled
back. Outside such a block an event is delivered at once.

A subscriber registered ``in_transaction=True`` is called as the event is published instead,
inside the publisher's transaction: its database writes commit or roll back with the change
(an activity feed, an audit row), and an exception it raises fails the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from blinker import Signal

E = TypeVar("E")

log = logging.getLogger(__name__)


class EventBus:
    """Publish/subscribe for domain events, one bus per app (bound by the host)."""

    def __init__(self, on_failure: Callable[[object], None] | None = None) -> None:
        """:param on_failure: told each event whose delivery to a subscriber raised (the host
        counts them)"""
        self._on_failure = on_failure
        self._signals: dict[type[Any], Signal] = {}  # after the commit
        self._in_transaction: dict[type[Any], Signal] = {}  # as published
        self._resolve: Callable[[type[Any]], Any] | None = None
        # One stack of buffers per thread/task: gthread workers serve requests concurrently.
        self._pending: ContextVar[tuple[list[object], ...]] = ContextVar(
            f"powerstrip-events-{id(self)}", default=()
        )

    def subscribe(
        self,
        event_type: type[E],
        handler: Callable[[E], None] | type[Callable[[E], None]],
        *,
        in_transaction: bool = False,
    ) -> None:
        """Call ``handler(event)`` for every published ``event_type`` (or subclass).

        ``handler`` may be a class: the host's injector builds it (with its collaborators)
        for each delivery, and the instance is called with the event.

        :param in_transaction: call it as the event is published, inside the publisher's unit
            of work (its writes are atomic with the change; its exception fails the change),
            rather than after the commit
        """
        signals = self._in_transaction if in_transaction else self._signals
        signal = signals.setdefault(event_type, Signal(event_type.__name__))
        if isinstance(handler, type):
            handler_class = handler

            def build_and_call(event: E) -> None:
                if self._resolve is None:
                    raise RuntimeError("no resolver: the app is not composed yet")
                self._resolve(handler_class)(event)

            signal.connect(build_and_call, weak=False)
            return
        signal.connect(handler, weak=False)

    def use_resolver(self, resolve: Callable[[type[Any]], Any]) -> None:
        """Let the host's injector build class subscribers (called once, by the host)."""
        self._resolve = resolve

    def publish(self, event: object) -> None:
        """Call the in-transaction subscribers of ``event`` now (their exceptions propagate);
        deliver it to the others now, or when the enclosing :meth:`deferred` block commits."""
        if self._in_transaction:
            for receiver in self._receivers(self._in_transaction, event):
                receiver(event)
        pending = self._pending.get()
        if pending:
            pending[-1].append(event)
        else:
            self._deliver(event)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold events published inside; deliver them on success, drop them on error.

        Nested blocks hand their events to the enclosing block, which decides.
        """
        outer = self._pending.get()
        buffer: list[object] = []
        token = self._pending.set((*outer, buffer))
        try:
            yield
        finally:
            self._pending.reset(token)
        if outer:
            outer[-1].extend(buffer)
            return
        for event in buffer:
            self._deliver(event)

    @staticmethod
    def _receivers(signals: dict[type[Any], Signal], event: object) -> Iterator[Any]:
        for event_type in type(event).__mro__:
            signal = signals.get(event_type)
            if signal is not None:
                yield from signal.receivers_for(event)

    def _deliver(self, event: object) -> None:
        for receiver in self._receivers(self._signals, event):
            try:
                receiver(event)
            except Exception:
                # The work is already committed: one failing subscriber must not keep the
                # event from the others. Logged with its traceback.
                log.exception(
                    "event subscriber failed",
                    extra={"event": type(event).__name__, "subscriber": repr(receiver)},
                )
                if self._on_failure is not None:
                    self._on_failure(event)
