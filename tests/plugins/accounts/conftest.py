"""Fixtures for the accounts plugin: a migrated app, an admin, HTTP helpers, and apps for races.

``race_api`` is an app on SQLite and on a fresh PostgreSQL database (each test using it runs
on both; PostgreSQL is skipped when it is down, and required under CI=true), with a pool big
enough for the racing threads, cheap password hashing and no rate limits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import injector
import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from plugins.accounts.passwords import Passwords
from powerstrip import Clock
from tests.conftest import upgrade
from tests.services import temporary_postgres_database

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
PASSWORD = "a perfectly fine passphrase"
THREADS = 20
ROUNDS = 5
T = TypeVar("T")


@dataclass
class Api:
    """Talks to the accounts API of one app, like a client would."""

    app: Flask
    client: FlaskClient

    def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/accounts/tokens", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def admin_headers(self) -> dict[str, str]:
        return self.bearer(self.login()["access_token"])

    def create_user(self, email: str, password: str = PASSWORD, role: str = "user") -> int:
        response = self.client.post(
            "/api/v1/accounts/users",
            json={"email": email, "password": password, "role": role},
            headers=self.admin_headers(),
        )
        assert response.status_code == 201, response.get_json()
        return int(response.get_json()["id"])


def create_admin(app: Flask) -> Api:
    """An :class:`Api` on ``app`` (migrated), whose admin the CLI created."""
    result = app.test_cli_runner().invoke(
        args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
    )
    assert result.exit_code == 0, result.output
    return Api(app, app.test_client())


@pytest.fixture
def api(migrated_app: Flask) -> Api:
    return create_admin(migrated_app)


class MovableClock(Clock):
    """The real time shifted by ``offset`` (negative: the past, so tokens stay valid)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return super().now() + self.offset


FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class FakesModule(injector.Module):
    """Cheap hashing (twenty threads of Argon2 at 64 MiB each are slow) and a movable clock."""

    def __init__(self, clock: MovableClock) -> None:
        self._clock = clock

    def configure(self, binder: injector.Binder) -> None:
        binder.bind(Passwords, to=Passwords(FAST))
        binder.bind(Clock, to=self._clock)


AppBuilder = Callable[..., Flask]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def build_app(instance_path: Path, clock: MovableClock) -> Iterator[AppBuilder]:
    """Build a migrated app on ``url`` with :class:`FakesModule`; keywords override config."""
    built: list[Flask] = []

    def build(url: str, **overrides: Any) -> Flask:
        config = {
            "ENVIRONMENT": "testing",
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": url,
            "DATABASE_POOL_SIZE": THREADS + 5,
            "RATELIMIT_ENABLED": False,
            **overrides,
        }
        app = create_app(config, modules=[FakesModule(clock)])
        built.append(app)
        upgrade(app)
        return app

    yield build
    for app in built:
        app.extensions["powerstrip.database"].engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def race_database(request: pytest.FixtureRequest, instance_path: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "postgresql":
        with temporary_postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{instance_path / 'race.db'}"


@pytest.fixture
def race_api(race_database: str, build_app: AppBuilder) -> Api:
    """An :class:`Api` with an admin, on each database of ``race_database``."""
    return create_admin(build_app(race_database, accounts={"REGISTRATION_OPEN": True}))


def race(actions: Sequence[Callable[[FlaskClient], T]], app: Flask) -> list[T]:
    """Run each action in a thread of its own, all at once (behind a barrier), each with its
    own client; their results, in no particular order."""
    start = threading.Barrier(len(actions))
    results: list[T] = []
    errors: list[BaseException] = []

    def run(action: Callable[[FlaskClient], T]) -> None:
        client = app.test_client()
        try:
            start.wait(30)
            results.append(action(client))
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(action,)) for action in actions]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not any(worker.is_alive() for worker in workers), "a racing request never finished"
    assert not errors, errors
    return results
