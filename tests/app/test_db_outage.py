"""PostgreSQL going away and coming back, and concurrent writers, on a real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Integer, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from app.db import Database, make_engine
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
