"""SQLite specifics: writers queue for the database's write lock instead of polling for it.

SQLite lets one connection write at a time. A writer that finds the lock taken waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms
at a time and looks again: while other writers come and go, an unlucky one keeps finding
the lock taken, until ``busy_timeout`` runs out and its request fails with "database is
locked" (a 503). Under a steady stream of writes that is the tail of every write's latency
(docs/performance.md, the thirteenth round: the insert's p99 at 280 ms, some writers starved
for the whole 5 s).

:class:`Writers` queues them instead: a connection about to write takes, in this order, a
lock of its process and an ``flock`` of a file beside the database (``<database>-writers``,
shared by every process writing through this module), and keeps both until its transaction
ends (commit, rollback or close). Both are woken by the kernel as soon as they are free, so
writers go roughly in the order they come (neither lock promises strict order), and a writer
finds SQLite's own lock free instead of sleeping in the busy handler. It waits at most
``timeout`` seconds in the queue: past it, the same "database is locked" error SQLite gives.

The queue only orders writers: SQLite's lock still guards the data. A process that does not
queue (the ``sqlite3`` shell, another program) still takes SQLite's lock; a writer that meets
it held waits in the busy handler too, up to ``busy_timeout`` more. Statements the queue does
not recognise as writes (``VACUUM``, ``ANALYZE``, a writing ``PRAGMA``, ``executescript``) take
SQLite's lock the same way. If ``flock`` does not work on the file system, writers queue only
on their process's lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 5.0
"""How long a writer waits for the write lock: SQLite's ``busy_timeout`` and the queue's."""
IDLE_SECONDS = 10.0
"""How long a process's doorman (:class:`_Doorman`) waits for a writer before it ends."""
SUFFIX = "-writers"
"""The queue's file: the database's path with this after it, as SQLite's ``-wal``."""

# A statement that may take the write lock, after any comments: DML, a write transaction's
# BEGIN, DDL, or a CTE with DML after it (_DML). A statement taken for a write that ran none
# leaves the queue right after it ran (see _Cursor).
_COMMENTS = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
_WRITE_KEYWORDS = r"INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|BEGIN\s+(?:IMMEDIATE|EXCLUSIVE)"
_WRITES = re.compile(rf"{_COMMENTS}(?:({_WRITE_KEYWORDS})|WITH)\b", re.IGNORECASE | re.DOTALL)
_DML = re.compile(r"\b(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def writes(sql: str) -> bool:
    """Whether ``sql`` may take the write lock (a read-only CTE does not)."""
    found = _WRITES.match(sql)
    return found is not None and (found.group(1) is not None or _DML.search(sql) is not None)


class _Doorman:
    """Waits in ``flock`` for the file, for the writer of this process whose turn is next.

    ``flock`` has no timeout: a writer waiting in it could not give up at its deadline. The
    doorman, a thread of the process, waits for it instead (blocked in the kernel, woken as
    soon as the file is free) and hands it to the writer, who waits on a condition that has a
    timeout. If that writer has given up meanwhile, the doorman hands the file to the next one
    waiting, or lets it go. It ends after ``IDLE_SECONDS`` without a writer to wait for.
    """

    def __init__(self, path: str) -> None:
        """Opens ``path`` (its own descriptor: an ``flock`` belongs to the open file); closed
        once neither the process's queue nor the doorman's thread needs it."""
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise sqlite3.OperationalError(f"cannot open {path}: {error}") from None
        # Not at exit: a connection dropped then may still let go of the file (the process's
        # end closes it).
        weakref.finalize(self, os.close, self._fd).atexit = False
        self._changed = threading.Condition()
        self._wanted = False  # a writer waits for the file
        self._handed = False  # the doorman holds the file for that writer
        self._failed: OSError | None = None
        self._running = False
        self._in_flock = False  # the doorman waits in flock (for a writer, or one that gave up)

    def take(self, deadline: float) -> bool:
        """Whether the caller holds the file by ``deadline``: at once if it is free, else once
        the doorman got it for the caller. Only the holder of the process's lock calls this."""
        with self._changed:
            if not self._in_flock:  # else: the doorman will get it, and may not hand it over twice
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
            if not self._running:
                threading.Thread(target=self._serve, name="sqlite-writers", daemon=True).start()
                self._running = True  # (a thread that could not start leaves it False)
            self._wanted = True
            self._changed.notify_all()
            interrupted = True  # until the wait returns: an exception in it (a signal's)
            try:
                self._changed.wait_for(
                    lambda: self._handed or self._failed is not None,
                    timeout=max(deadline - time.monotonic(), 0.0),
                )
                interrupted = False
            finally:  # handed over, failed, given up or interrupted: the next writer starts anew
                failed, self._failed = self._failed, None
                handed = self._handed
                self._wanted = self._handed = False
                self._changed.notify_all()
                if handed and interrupted:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)  # nobody will use it
            if failed is not None and not handed:
                raise failed
            return handed

    def _serve(self) -> None:
        with self._changed:
            while True:
                if not self._changed.wait_for(lambda: self._wanted, timeout=IDLE_SECONDS):
                    self._running = False
                    return
                self._in_flock = True
                self._changed.release()
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX)  # woken as soon as the file is free
                except OSError as error:
                    failed: OSError | None = error
                else:
                    failed = None
                finally:
                    self._changed.acquire()
                    self._in_flock = False
                if failed is not None:
                    if self._wanted:  # else nobody to tell: the next writer meets it anew
                        self._failed = failed
                    self._running = False
                    self._changed.notify_all()
                    return
                if not self._wanted:  # its writer gave up before the file was free
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    continue
                self._handed = True
                self._changed.notify_all()
                self._changed.wait_for(lambda: not self._handed)  # taken (or given up)

    def let_go(self) -> None:
        """Let the file go (its holder's transaction ended)."""
        fcntl.flock(self._fd, fcntl.LOCK_UN)


@dataclass(slots=True)
class _Process:
    """The queue as one process holds it: its lock, and its doorman with its own descriptor
    of the file (a forked child must not use its parent's: they share the parent's hold)."""

    pid: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    doorman: _Doorman | None = None


class Writers:
    """The write queue of one SQLite database file (``path``: the database's)."""

    def __init__(self, path: str, timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self.path = f"{path}{SUFFIX}"
        self.timeout = timeout
        self._process = _Process(os.getpid())
        self._unqueued = False  # flock refused by the file system: SQLite's lock alone

    def acquire(self) -> _Process:
        """Wait for this writer's turn; the hold to hand back to :meth:`release`.

        Raises ``sqlite3.OperationalError`` ("database is locked") after ``timeout`` seconds.
        """
        process = self._process
        if process.pid != os.getpid():  # forked: the parent's lock and descriptor are not ours
            process = self._process = _Process(os.getpid())
        deadline = time.monotonic() + self.timeout
        if not process.lock.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            self._flock(process, deadline)
        except BaseException:
            process.lock.release()
            raise
        return process

    def release(self, process: _Process) -> None:
        """End a hold :meth:`acquire` returned (in this process: a forked child dropping its
        copy of a parent's connection must not let go of the parent's hold)."""
        if process.pid != os.getpid():
            return
        try:
            if process.doorman is not None and not self._unqueued:
                process.doorman.let_go()
        finally:
            process.lock.release()

    def _flock(self, process: _Process, deadline: float) -> None:
        """The file for this process's writer (who holds the process's lock)."""
        if self._unqueued:
            return
        if process.doorman is None:
            process.doorman = _Doorman(self.path)
        try:
            taken = process.doorman.take(deadline)
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            log.warning("SQLite writers not queued: %s cannot be locked (%s)", self.path, error)
            self._unqueued = True
            return
        if not taken:
            raise sqlite3.OperationalError("database is locked")


class _Cursor(sqlite3.Cursor):
    """Takes the queue before a statement that may write, when its connection does not hold
    it; lets it go after any statement that left no transaction open (a read, or a write in
    autocommit mode)."""

    connection: Connection

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        self._queued(super().execute, sql, parameters)
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> _Cursor:
        self._queued(super().executemany, sql, seq_of_parameters)
        return self

    def _queued(self, run: Callable[[str, Any], object], sql: str, arguments: Any) -> None:
        connection = self.connection
        if connection.hold is None and writes(sql):
            connection.hold = connection.writers.acquire()
        try:
            run(sql, arguments)
        finally:
            if connection.hold is not None and not connection.in_transaction:
                connection.let_go()


class Connection(sqlite3.Connection):
    """A connection whose writers queue (:class:`Writers`): give it to ``sqlite3.connect`` as
    ``factory`` after setting ``writers`` on a subclass (:func:`connection_class`)."""

    writers: Writers
    hold: _Process | None = None

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        """``sqlite3.Connection.execute``, through a queueing cursor (its own skips ours)."""
        return _Cursor(self).execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> _Cursor:
        """``sqlite3.Connection.executemany``, through a queueing cursor."""
        return _Cursor(self).executemany(sql, seq_of_parameters)

    def let_go(self) -> None:
        """Leave the queue, if in it."""
        hold, self.hold = self.hold, None
        if hold is not None:
            self.writers.release(hold)

    def _ended(self) -> None:
        """Leave the queue if no transaction is open (one that failed to end keeps it)."""
        if self.hold is not None and not self.in_transaction:
            self.let_go()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._ended()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._ended()

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        """``sqlite3.Connection.executescript``, which commits first (not queued itself)."""
        try:
            return super().executescript(sql_script)
        finally:
            self._ended()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
        /,
    ) -> Literal[False]:
        """``with connection:`` commits or rolls back without :meth:`commit`/:meth:`rollback`."""
        try:
            return super().__exit__(kind, error, trace)
        finally:
            self._ended()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.let_go()

    def __del__(self) -> None:
        """A connection dropped without being closed leaves the queue too, once SQLite has
        let go of its lock: otherwise every later writer would wait until its deadline."""
        with contextlib.suppress(sqlite3.Error):  # (another thread's, say)
            super().close()
        self.let_go()


def connection_class(writers: Writers) -> type[Connection]:
    """A :class:`Connection` class whose connections queue in ``writers``."""
    return type("QueuedConnection", (Connection,), {"writers": writers})
