"""SQLite's writers queue for the write lock (app.sqlite): in the order they come, across
threads and processes, never longer than the busy timeout, and never holding it past their
transaction.

A writer that queues never meets SQLite's own lock held, so the tests give the waiting
connection ``busy_timeout=0``: without the queue its write fails at once with "database is
locked" while the other holds the lock.
"""

from __future__ import annotations

import errno
import gc
import logging
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app import sqlite
from app.db import make_engine

DEADLINE = 30.0  # seconds any wait of these tests may last before it fails them


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "writers.db")


@pytest.fixture
def engine(path: str) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{path}", pool={})
    with made.begin() as connection:
        connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY)"))
    yield made
    made.dispose()


def raw(engine: Engine, busy_timeout_ms: int | None = None) -> sqlite.Connection:
    """A connection of ``engine``'s class (sharing its queue), outside its pool."""
    pooled = engine.raw_connection()
    queued = type(pooled.dbapi_connection)
    pooled.close()
    assert issubclass(queued, sqlite.Connection)
    path = engine.url.database
    assert path is not None
    connection = sqlite3.connect(path, factory=queued, check_same_thread=False)
    if busy_timeout_ms is not None:
        connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return connection


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM t")).scalar_one())


def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for ``condition``."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.001)


class Watched:
    """A process's lock of the queue that tells when a second writer asks for it."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._asked = 0
        self.second_asked = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self._asked += 1
        if self._asked == 2:
            self.second_asked.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def write_in_thread(
    connection: sqlite.Connection, value: int
) -> tuple[threading.Thread, list[BaseException]]:
    """A thread (started) writing ``value`` and committing; what it raised."""
    failures: list[BaseException] = []

    def write() -> None:
        try:
            connection.execute("INSERT INTO t VALUES (?)", (value,))
            connection.commit()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    return thread, failures


def writers_of(connection: sqlite.Connection) -> sqlite.Writers:
    return connection.writers


def test_file_engines_queue_writers_and_in_memory_ones_do_not(engine: Engine, path: str) -> None:
    pooled = engine.raw_connection()
    assert isinstance(pooled.dbapi_connection, sqlite.Connection)
    pooled.close()
    assert Path(f"{path}{sqlite.SUFFIX}").exists()  # made by the fixture's CREATE TABLE
    memory = make_engine("sqlite://", pool={})
    assert not isinstance(memory.raw_connection().dbapi_connection, sqlite.Connection)
    memory.dispose()


def test_a_writer_waits_for_another_threads_transaction_in_the_queue(engine: Engine) -> None:
    first = raw(engine)
    watched = Watched(threading.Lock())
    writers_of(first)._process.lock = watched  # type: ignore[assignment]
    first.execute("INSERT INTO t VALUES (1)")
    assert first.hold is not None
    assert first.in_transaction
    second = raw(engine, busy_timeout_ms=0)  # SQLite's lock would refuse it at once
    thread, failures = write_in_thread(second, 2)
    assert watched.second_asked.wait(DEADLINE)
    first.commit()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert failures == []
    assert count(engine) == 2
    assert first.hold is None
    assert second.hold is None
    assert not watched.locked()
    first.close()
    second.close()


def _hold_a_write(path: str, held: Event, go: Event) -> None:
    """Another process: write, say so, commit once told to."""
    engine = make_engine(f"sqlite:///{path}", pool={})
    connection = raw(engine)
    connection.execute("INSERT INTO t VALUES (10)")
    held.set()
    go.wait(DEADLINE)
    connection.commit()
    connection.close()
    engine.dispose()


def test_a_writer_waits_for_another_processs_transaction_in_the_queue(
    engine: Engine, path: str
) -> None:
    context = multiprocessing.get_context("spawn")
    held, go = context.Event(), context.Event()
    other = context.Process(target=_hold_a_write, args=(path, held, go))
    other.start()
    try:
        assert held.wait(DEADLINE)
        mine = raw(engine, busy_timeout_ms=0)
        thread, failures = write_in_thread(mine, 11)
        until(writers_of(mine)._process.lock.locked)  # its turn in this process: at the file
        go.set()
        thread.join(DEADLINE)
        assert not thread.is_alive()
        assert failures == []
        assert count(engine) == 2
        mine.close()
    finally:
        go.set()
        other.join(DEADLINE)
    assert other.exitcode == 0


def test_a_writer_waits_no_longer_than_the_timeout(path: str) -> None:
    holder = sqlite.Writers(path)
    hold = holder.acquire()
    try:
        other_file = sqlite.Writers(path, timeout=0.05)  # its own descriptor: another process's
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other_file.acquire()
        same_process = sqlite.Writers(path, timeout=0.05)
        same_process._process = holder._process  # this process's lock, held by holder
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            same_process.acquire()
    finally:
        holder.release(hold)
    again = sqlite.Writers(path, timeout=0.05)  # free now
    again.release(again.acquire())


def test_a_write_refused_by_the_queue_is_a_database_error(engine: Engine, path: str) -> None:
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415 - what the 503 handler catches

    holder = sqlite.Writers(path)
    hold = holder.acquire()
    try:
        with engine.connect() as connection:
            writers_of(raw_of(connection)).timeout = 0.05
            with pytest.raises(OperationalError, match="database is locked"):
                connection.execute(text("INSERT INTO t VALUES (3)"))
            assert raw_of(connection).hold is None
    finally:
        holder.release(hold)
    assert count(engine) == 0


def raw_of(connection: Any) -> sqlite.Connection:
    dbapi: sqlite.Connection = connection.connection.dbapi_connection
    return dbapi


@pytest.mark.parametrize(
    ("end", "kept"),
    [
        (lambda connection: connection.commit(), 1),
        (lambda connection: connection.rollback(), 0),
        (lambda connection: connection.close(), 0),
    ],
    ids=["commit", "rollback", "close"],
)
def test_the_queue_is_held_until_the_transaction_ends(
    engine: Engine, path: str, end: Callable[[sqlite.Connection], None], kept: int
) -> None:
    connection = raw(engine)
    connection.execute("SELECT * FROM t")
    assert connection.hold is None  # a read does not queue
    connection.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    hold = connection.hold
    assert hold is not None
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("INSERT INTO t VALUES (1)")  # fails inside the transaction
    assert connection.hold is hold  # still its transaction
    end(connection)
    assert connection.hold is None
    assert not hold.lock.locked()
    other = sqlite.Writers(path, timeout=0.05)  # the file is free too
    other.release(other.acquire())
    assert count(engine) == 2 * kept
    connection.close()


@pytest.mark.parametrize(
    ("statement", "queued"),
    [
        ("INSERT INTO t VALUES (1)", True),
        ("  /* a comment */ -- and another\n insert into t values (1)", True),
        ("WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x", True),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", False),  # reads never wait for writers
        ("CREATE TABLE u (a INTEGER)", True),
        ("BEGIN IMMEDIATE", True),
        ("BEGIN", False),
        ("SELECT * FROM t", False),
    ],
)
def test_what_queues(engine: Engine, path: str, statement: str, queued: bool) -> None:
    other = sqlite.Writers(path)  # another process's writer holds the file
    held = other.acquire()
    connection = raw(engine)
    writers_of(connection).timeout = 0.05
    try:
        if queued:
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                connection.execute(statement)
        else:
            connection.execute(statement)
        assert connection.hold is None
    finally:
        connection.rollback()
        other.release(held)
        connection.close()


@pytest.mark.parametrize(
    "statement",
    [
        "WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x",  # held: a transaction
        "CREATE TABLE u (a INTEGER)",  # DDL, autocommitted: left at once
    ],
)
def test_the_queue_is_held_exactly_while_a_transaction_is_open(
    engine: Engine, statement: str
) -> None:
    connection = raw(engine)
    connection.execute(statement)
    assert (connection.hold is not None) == connection.in_transaction
    connection.rollback()
    assert connection.hold is None
    connection.close()


def test_executemany_outside_a_transaction_queues_and_leaves_the_queue(
    engine: Engine, path: str
) -> None:
    connection = raw(engine)
    connection.isolation_level = None  # autocommit: every write is its own transaction
    other = sqlite.Writers(path)
    held = other.acquire()
    writers_of(connection).timeout = 0.05
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        connection.executemany("INSERT INTO t VALUES (?)", [(7,), (8,)])
    other.release(held)
    connection.executemany("INSERT INTO t VALUES (?)", [(7,), (8,)])
    assert connection.hold is None
    assert count(engine) == 2
    connection.close()


def test_a_with_block_and_executescript_leave_the_queue(engine: Engine) -> None:
    connection = raw(engine)
    with connection:  # commits in C, not through commit()
        connection.execute("INSERT INTO t VALUES (1)")
        assert connection.hold is not None
    assert connection.hold is None
    connection.execute("INSERT INTO t VALUES (2)")
    connection.executescript("SELECT 1;")  # commits first
    assert connection.hold is None
    assert count(engine) == 2
    connection.close()


def _fork_and_acquire(writers: sqlite.Writers, result: Any) -> None:
    try:
        writers.release(writers.acquire())
        result.put("acquired")
    except sqlite3.OperationalError as error:
        result.put(str(error))


def test_a_forked_process_queues_on_a_file_descriptor_of_its_own(path: str) -> None:
    writers = sqlite.Writers(path, timeout=0.2)
    hold = writers.acquire()  # the parent holds the file...
    hold.lock.release()  # ...but not its process lock, which a child must not share anyway
    try:
        context = multiprocessing.get_context("fork")
        result = context.SimpleQueue()
        child = context.Process(target=_fork_and_acquire, args=(writers, result))
        child.start()
        child.join(DEADLINE)
        assert child.exitcode == 0
        assert result.get() == "database is locked"  # not let in through the parent's hold
    finally:
        hold.lock.acquire()
        writers.release(hold)


def test_without_flock_writers_wait_in_sqlites_busy_handler(
    path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unsupported(_fd: int, _operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(sqlite.fcntl, "flock", unsupported)
    writers = sqlite.Writers(path)
    with caplog.at_level(logging.WARNING, logger="app.sqlite"):
        writers.release(writers.acquire())
        writers.release(writers.acquire())  # no second attempt, no second warning
    assert [record.getMessage() for record in caplog.records] == [
        f"SQLite writers not queued: {path}{sqlite.SUFFIX} cannot be locked "
        "([Errno 37] No locks available)"
    ]


def test_other_flock_failures_are_raised(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_fd: int, _operation: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(sqlite.fcntl, "flock", broken)
    writers = sqlite.Writers(path)
    with pytest.raises(OSError, match="I/O error"):
        writers.acquire()
    assert not writers._process.lock.locked()  # the process lock was given back


def test_an_unopenable_queue_file_is_a_database_error(tmp_path: Path) -> None:
    writers = sqlite.Writers(str(tmp_path / "missing" / "x.db"))
    with pytest.raises(sqlite3.OperationalError, match="cannot open"):
        writers.acquire()
    assert not writers._process.lock.locked()


def doorman_of(writers: sqlite.Writers) -> Any:
    doorman = writers._process.doorman
    assert doorman is not None
    return doorman


def test_a_writer_waiting_for_another_process_is_let_in_when_it_commits(path: str) -> None:
    other = sqlite.Writers(path)  # its own open file: as another process's
    held = other.acquire()
    mine = sqlite.Writers(path)
    holds: list[Any] = []
    thread = threading.Thread(target=lambda: holds.append(mine.acquire()))
    thread.start()
    until(lambda: mine._process.doorman is not None and doorman_of(mine)._in_flock)
    other.release(held)
    thread.join(DEADLINE)
    assert len(holds) == 1  # the doorman handed the file over
    third = sqlite.Writers(path, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        third.acquire()  # mine holds it now
    mine.release(holds[0])
    third.timeout = DEADLINE
    third.release(third.acquire())


def test_a_writer_that_gave_up_leaves_the_file_to_the_next(path: str) -> None:
    other = sqlite.Writers(path)
    held = other.acquire()
    mine = sqlite.Writers(path, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        mine.acquire()  # gave up; its doorman may still wait in flock
    mine.timeout = DEADLINE
    holds: list[Any] = []
    thread = threading.Thread(target=lambda: holds.append(mine.acquire()))
    thread.start()  # the next writer: the doorman's pending wait is now for it
    until(lambda: doorman_of(mine)._wanted)
    other.release(held)
    thread.join(DEADLINE)
    assert len(holds) == 1
    mine.release(holds[0])


def test_a_file_got_for_a_writer_that_gave_up_is_let_go(path: str) -> None:
    other = sqlite.Writers(path)
    held = other.acquire()
    mine = sqlite.Writers(path, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        mine.acquire()
    other.release(held)  # the doorman gets the file for nobody, and lets it go
    third = sqlite.Writers(path)
    third.release(third.acquire())
    until(lambda: not doorman_of(mine)._in_flock)


def test_an_idle_doorman_ends(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "IDLE_SECONDS", 0.01)
    other = sqlite.Writers(path)
    held = other.acquire()
    mine = sqlite.Writers(path, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError):
        mine.acquire()
    other.release(held)
    until(lambda: not doorman_of(mine)._running)
    mine.release(mine.acquire())  # a new doorman when one is needed again
    held = other.acquire()
    with pytest.raises(sqlite3.OperationalError):
        mine.acquire()
    assert doorman_of(mine)._running
    other.release(held)


def test_a_failure_of_the_doormans_wait_reaches_the_writer(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sqlite.fcntl.flock

    def failing_wait(fd: int, operation: int) -> None:
        if operation == sqlite.fcntl.LOCK_EX:  # the doorman's blocking wait
            raise OSError(errno.EIO, "I/O error")
        real(fd, operation)

    other = sqlite.Writers(path)
    held = other.acquire()
    monkeypatch.setattr(sqlite.fcntl, "flock", failing_wait)
    mine = sqlite.Writers(path)
    with pytest.raises(OSError, match="I/O error"):
        mine.acquire()
    assert not mine._process.lock.locked()
    assert not doorman_of(mine)._running
    monkeypatch.undo()
    other.release(held)
    mine.release(mine.acquire())


def test_a_connection_dropped_without_closing_leaves_the_queue(engine: Engine, path: str) -> None:
    connection = raw(engine)
    connection.execute("INSERT INTO t VALUES (1)")
    hold = connection.hold
    assert hold is not None
    del connection
    gc.collect()
    assert not hold.lock.locked()
    other = sqlite.Writers(path, timeout=DEADLINE)
    other.release(other.acquire())
    assert count(engine) == 0  # its transaction went with it


def _drop_a_held_connection(connection: sqlite.Connection) -> None:
    connection.let_go()  # what closing or collecting the child's copy ends in


def test_a_forked_child_dropping_its_copy_of_a_held_connection_keeps_the_parents_hold(
    engine: Engine, path: str
) -> None:
    connection = raw(engine)
    connection.execute("INSERT INTO t VALUES (1)")
    assert connection.hold is not None
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_drop_a_held_connection, args=(connection,))
    child.start()
    child.join(DEADLINE)
    assert child.exitcode == 0
    other = sqlite.Writers(path, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        other.acquire()  # still the parent's
    connection.commit()
    other.release(other.acquire())
    connection.close()


class InterruptedWaitError(Exception):
    """What a signal's handler raises, say."""


@pytest.mark.parametrize("handed_first", [False, True])
def test_a_wait_interrupted_by_an_exception_leaves_the_doorman_ready(
    path: str, monkeypatch: pytest.MonkeyPatch, handed_first: bool
) -> None:
    other = sqlite.Writers(path)
    held = other.acquire()
    doorman = sqlite._Doorman(f"{path}{sqlite.SUFFIX}")
    monkeypatch.setattr(doorman, "_serve", lambda: None)  # no doorman thread: the test is it

    def interrupted_wait(_predicate: Any, timeout: float | None = None) -> bool:
        if handed_first:  # the doorman handed the file over just before the exception
            other.release(held)
            sqlite.fcntl.flock(doorman._fd, sqlite.fcntl.LOCK_EX)
            doorman._handed = True
        raise InterruptedWaitError

    monkeypatch.setattr(doorman._changed, "wait_for", interrupted_wait)
    with pytest.raises(InterruptedWaitError):
        doorman.take(time.monotonic() + DEADLINE)
    assert not doorman._wanted
    assert not doorman._handed
    if not handed_first:
        other.release(held)
    third = sqlite.Writers(path, timeout=0.05)  # the file is nobody's
    third.release(third.acquire())


class _CommitFails(sqlite3.Connection):
    def commit(self) -> None:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_commit_that_fails_keeps_the_queue_until_the_transaction_ends(
    engine: Engine, path: str
) -> None:
    queued = type(raw(engine))  # the engine's class, over one whose commit fails
    failing = type("Failing", (queued, _CommitFails), {})
    connection = sqlite3.connect(path, factory=failing, check_same_thread=False)
    connection.execute("INSERT INTO t VALUES (1)")
    hold = connection.hold
    assert hold is not None
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        connection.commit()
    assert connection.in_transaction
    assert connection.hold is hold  # its transaction is still open: so is its hold
    connection.rollback()
    assert connection.hold is None
    connection.close()
