"""PostgreSQL going away and coming back, and concurrent writers, on a real server.

Every wait on PostgreSQL is bounded: ``DATABASE_CONNECT_TIMEOUT`` for a connection (a server
that accepts and never answers included), ``DATABASE_POOL_TIMEOUT`` for a free one, the
statement timeout for a query, ``DATABASE_READ_TIMEOUT`` for any answer on an open connection
(a server that stopped answering, which a black-holed proxy shows: its kernel acknowledges, so
TCP sees no fault); a dead peer is also dropped by TCP keepalives and ``tcp_user_timeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, Integer, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from app.db import DATABASE, Database, make_engine
from app.pg import unbounded_reads
from powerstrip import Model
from tests.conftest import AppFactory, upgrade
from tests.services import temporary_postgres_database
from tests.spies import record_calls
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with temporary_postgres_database() as url:
        yield url


def test_api_and_readiness_recover_when_postgres_comes_back(
    make_app: AppFactory, postgres_url: str
) -> None:
    real = make_url(postgres_url)
    with TcpProxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
        app = make_app(DATABASE_URL=real.set(port=proxy.port).render_as_string(False))
        upgrade(app)
        client = app.test_client()
        assert client.post("/api/v1/hello/greetings", json={"name": "before"}).status_code == 201

        proxy.cut()  # PostgreSQL is "stopped": pooled connections die, new ones are refused
        down = client.get("/api/v1/hello/greetings")
        assert down.status_code == 503
        assert down.mimetype == "application/problem+json"
        ready = client.get("/api/v1/health/ready")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database"]["status"] == "down"

        proxy.restore()  # ... and started again: no restart of the app
        listed = client.get("/api/v1/hello/greetings")
        assert listed.status_code == 200
        assert [row["name"] for row in listed.get_json()] == ["before"]
        assert client.get("/api/v1/health/ready").status_code == 200


CONNECT_TIMEOUT = 2  # seconds: libpq's least
# A request while PostgreSQL is black-holed: one connect timeout, then its 503; the margin is
# for a loaded machine.
BOUND_SECONDS = CONNECT_TIMEOUT + 2.0
CLIENTS, ROUNDS = 8, 3


def test_connections_carry_timeouts_and_keepalives_under_the_urls_own(
    make_app: AppFactory, postgres_url: str
) -> None:
    app = make_app(DATABASE_URL=f"{postgres_url}?connect_timeout=7&application_name=outage")
    database: Database = app.extensions[DATABASE]
    with database.engine.connect() as connection:
        parameters = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    assert parameters["connect_timeout"] == "7"  # the URL's own wins
    assert parameters["application_name"] == "outage"
    assert parameters["keepalives"] == "1"
    assert parameters["keepalives_idle"] == "30"
    assert parameters["keepalives_interval"] == "10"
    assert parameters["keepalives_count"] == "3"
    assert parameters["tcp_user_timeout"] == "60000"  # 30 + 10 x 3 seconds
    assert "statement_timeout=15000" in parameters["options"]


def test_black_holed_postgres_answers_503_in_bounded_time_under_load(
    make_app: AppFactory, postgres_url: str, record_property: Callable[[str, object], None]
) -> None:
    real = make_url(postgres_url)
    with TcpProxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
        app = make_app(
            DATABASE_URL=real.set(port=proxy.port).render_as_string(False),
            DATABASE_CONNECT_TIMEOUT=CONNECT_TIMEOUT,
        )
        upgrade(app)

        def get(_: int) -> tuple[int, float, str | None, str | None]:
            started = time.perf_counter()
            response = app.test_client().get("/api/v1/hello/greetings")
            elapsed = time.perf_counter() - started
            return (
                response.status_code,
                elapsed,
                response.mimetype,
                response.headers.get("Retry-After"),
            )

        with ThreadPoolExecutor(CLIENTS) as clients:
            assert {answer[0] for answer in clients.map(get, range(CLIENTS))} == {200}
            # The host is gone from the network: its open connections were dropped (keepalives,
            # tcp_user_timeout) and new ones are accepted by nobody who answers.
            proxy.cut()
            proxy.blackhole()
            started = time.perf_counter()
            down = list(clients.map(get, range(CLIENTS * ROUNDS)))
            outage_seconds = time.perf_counter() - started
            ready = app.test_client().get("/api/v1/health/ready")

            proxy.restore()  # and back: no restart
            up = list(clients.map(get, range(CLIENTS)))
        slowest = max(elapsed for _, elapsed, _, _ in down)
        record_property("slowest_503_with_postgres_black_holed_seconds", round(slowest, 3))
        record_property("outage_of_24_requests_8_threads_seconds", round(outage_seconds, 3))
        assert {(status, mimetype) for status, _, mimetype, _ in down} == {
            (503, "application/problem+json")
        }
        assert all(retry_after is not None and int(retry_after) > 0 for *_, retry_after in down)
        assert slowest < BOUND_SECONDS
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database"]["status"] == "down"
        assert {status for status, *_ in up} == {200}


READ_TIMEOUT = 1.0  # seconds a silent server is waited for (DATABASE_READ_TIMEOUT)


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of the test database, and the URL through it."""
    real = make_url(postgres_url)
    with TcpProxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
        yield proxy, real.set(port=proxy.port).render_as_string(False)


def _use(engine: Engine, times: int, *, pause: float = 0.0) -> None:
    for number in range(times):
        if number:
            time.sleep(pause)  # idle at least this long: the direction of the test, not a race
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1


def test_a_pooled_connection_is_pinged_only_after_sitting_idle(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = make_engine(postgres_url, pool={"pool_size": 1}, ping_after_idle=3600)
    quiet = make_engine(postgres_url, pool={"pool_size": 1}, ping_after_idle=0.05)
    always = make_engine(postgres_url, pool={"pool_size": 1})  # 0: SQLAlchemy's pre-ping
    try:
        busy_pings, quiet_pings, always_pings = (
            record_calls(monkeypatch, engine.dialect, "do_ping") for engine in (busy, quiet, always)
        )
        _use(busy, 3)
        _use(quiet, 3, pause=0.1)
        _use(always, 3)
        # A new connection is never pinged; then: never, after each pause, every time.
        assert (len(busy_pings), len(quiet_pings), len(always_pings)) == (0, 2, 2)
        quiet.dispose()  # as after a fork: the rule comes with the new pool
        _use(quiet, 2, pause=0.1)
        assert len(quiet_pings) == 3
    finally:
        for engine in (busy, quiet, always):
            engine.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(
    proxied: tuple[TcpProxy, str],
) -> None:
    """The ping finds it; without one (used a moment ago) the statement fails once and the
    pool is emptied, so the next use gets a new connection."""
    proxy, url = proxied
    quiet = make_engine(url, pool={"pool_size": 1}, ping_after_idle=0.05)
    busy = make_engine(url, pool={"pool_size": 1}, ping_after_idle=3600)
    try:
        _use(quiet, 1)
        _use(busy, 1)
        proxy.cut()  # the server restarts: both pooled connections are dead
        proxy.restore()
        time.sleep(0.1)
        _use(quiet, 1)
        with pytest.raises(OperationalError), busy.connect() as connection:
            connection.execute(text("SELECT 1"))
        _use(busy, 1)
    finally:
        quiet.dispose()
        busy.dispose()


def test_a_server_that_stops_answering_on_an_open_connection_is_given_up(
    proxied: tuple[TcpProxy, str],
) -> None:
    """The proxy's kernel acknowledges everything and nothing comes back: TCP sees no fault,
    only the client's read bound ends the wait; the connection is closed and discarded."""
    proxy, url = proxied
    engine = make_engine(url, pool={"pool_size": 1}, read_timeout=READ_TIMEOUT)
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
            proxy.blackhole()
            started = time.perf_counter()
            with pytest.raises(OperationalError, match=r"did not answer within 1 s"):
                connection.execute(text("SELECT 2"))
            waited = time.perf_counter() - started
            assert connection.invalidated  # a disconnect to SQLAlchemy: out of the pool
        assert READ_TIMEOUT <= waited < READ_TIMEOUT + 1.5
        proxy.restore()
        with engine.connect() as connection:  # a new connection: back without a restart
            assert connection.scalar(text("SELECT 3")) == 3
    finally:
        engine.dispose()


def test_a_slow_statement_is_cancelled_by_the_server_before_the_client_gives_up(
    postgres_url: str,
) -> None:
    engine = make_engine(
        postgres_url,
        pool={"connect_args": {"options": "-c statement_timeout=200"}},
        read_timeout=READ_TIMEOUT,
    )
    try:
        with engine.connect() as connection:
            with pytest.raises(OperationalError) as cancelled:
                connection.execute(text("SELECT pg_sleep(0.6)"))
            assert cancelled.value.orig is not None
            assert cancelled.value.orig.sqlstate == "57014"  # type: ignore[attr-defined]
            assert not connection.invalidated  # the connection is kept
            connection.rollback()
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()


def test_a_migration_lifts_the_read_bound_for_its_block_only(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool={}, read_timeout=0.3)
    try:
        with engine.connect() as connection:
            with unbounded_reads(connection):
                assert connection.scalar(text("SELECT pg_sleep(0.6)::text")) == ""
            with pytest.raises(OperationalError, match=r"did not answer within 0.3 s"):
                connection.execute(text("SELECT pg_sleep(0.6)"))
    finally:
        engine.dispose()


def test_the_read_bound_applies_to_postgresql_only(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", pool={}, read_timeout=0.01)
    try:
        with engine.connect() as connection, unbounded_reads(connection):
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()


def test_postgres_silent_on_open_connections_answers_503_in_bounded_time_and_recovers(
    make_app: AppFactory,
    proxied: tuple[TcpProxy, str],
    record_property: Callable[[str, object], None],
) -> None:
    """Pooled connections stay open to a server that stopped answering: each request gives up
    after the read timeout (its pool ping), tries one new connection (connect timeout), and
    answers its 503; none waits for the outage to end."""
    proxy, url = proxied
    app = make_app(
        DATABASE_URL=url,
        DATABASE_CONNECT_TIMEOUT=CONNECT_TIMEOUT,
        DATABASE_STATEMENT_TIMEOUT=500,
        DATABASE_READ_TIMEOUT=int(READ_TIMEOUT),
    )
    upgrade(app)

    def get(_: int) -> tuple[int, float, str | None, str | None]:
        started = time.perf_counter()
        response = app.test_client().get("/api/v1/hello/greetings")
        return (
            response.status_code,
            time.perf_counter() - started,
            response.mimetype,
            response.headers.get("Retry-After"),
        )

    with ThreadPoolExecutor(CLIENTS) as clients:
        assert {answer[0] for answer in clients.map(get, range(CLIENTS))} == {200}
        proxy.blackhole()  # connections stay open; not a byte comes back
        down = list(clients.map(get, range(CLIENTS * ROUNDS)))
        proxy.restore()
        up = list(clients.map(get, range(CLIENTS)))
    slowest = max(elapsed for _, elapsed, _, _ in down)
    record_property("slowest_503_with_postgres_silent_seconds", round(slowest, 3))
    assert {(status, mimetype) for status, _, mimetype, _ in down} == {
        (503, "application/problem+json")
    }
    assert all(retry_after is not None and int(retry_after) > 0 for *_, retry_after in down)
    assert slowest < READ_TIMEOUT + CONNECT_TIMEOUT + 2.0
    assert {status for status, *_ in up} == {200}


class Counter(Model):
    """Optimistic concurrency: every UPDATE checks and bumps ``version``."""

    __tablename__ = "dbtest_counters"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API


def test_concurrent_updates_of_one_row_never_lose_an_update(postgres_url: str) -> None:
    database = Database(make_engine(postgres_url, pool={"pool_size": 4}))
    table = Counter.__table__
    Model.metadata.create_all(database.engine, tables=[table])  # type: ignore[list-item]
    with database.sessions.begin() as session:
        session.add(Counter(id=1, value=0))
    increments, conflicts = 25, []

    def worker() -> None:
        for _ in range(increments):
            while True:  # what a service does with a 409: re-read, re-apply, retry
                with database.sessions() as session:
                    counter = session.get_one(Counter, 1)
                    counter.value += 1
                    try:
                        session.commit()
                        break
                    except StaleDataError:
                        conflicts.append(1)
                        session.rollback()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with database.sessions() as session:
        final = session.scalar(select(Counter.value).where(Counter.id == 1))
    Model.metadata.drop_all(database.engine, tables=[table])  # type: ignore[list-item]
    database.engine.dispose()
    assert final == 2 * increments  # every increment survived
    assert conflicts  # and the writers really did collide (the test can fail)
