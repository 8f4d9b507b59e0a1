"""PostgreSQL going away and coming back, and concurrent writers, on a real server.

Every wait on PostgreSQL is bounded: ``DATABASE_CONNECT_TIMEOUT`` for a connection (a server
that accepts and never answers included), ``DATABASE_POOL_TIMEOUT`` for a free one, the
statement timeout for a query; a dead peer under an open connection is dropped by TCP
keepalives and ``tcp_user_timeout`` (which a loopback proxy cannot show: its kernel answers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Integer, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from app.db import DATABASE, Database, make_engine
from powerstrip import Model
from tests.conftest import AppFactory, upgrade
from tests.services import temporary_postgres_database
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
