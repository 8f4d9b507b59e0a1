"""``@idempotent`` through HTTP: claim, replay, conflicts, expiry, takeover, failures, and
concurrent retries through gunicorn on PostgreSQL.

A throwaway plugin (installed per test) has a POST marked ``@idempotent`` that creates a row,
an authenticator taking the caller's name from a header, a clock a test moves and a gate that
holds a request inside its view (an operation in flight). Races between the steps of a claim
are staged with SQLAlchemy's ``before_cursor_execute`` event: another connection changes the
row just before the host's statement runs.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from threading import Barrier
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from app import ConfigError
from app.db import DATABASE, Database
from app.factory import PLUGINS
from app.idempotency import (
    CLAIM_ATTEMPTS,
    IdempotencyKey,
    caller_key,
    fingerprint,
    idempotent_operations,
)
from app.migrations import ALEMBIC_DIRECTORY, tables_created, unmigrated_tables
from powerstrip import Clock, Model
from powerstrip.cli import INJECTOR
from tests.conftest import AppFactory, upgrade
from tests.plugin_fixtures import Installer
from tests.services import temporary_postgres_database
from tests.test_gunicorn import running

TABLE = IdempotencyKey.__tablename__
TTL = 600
LOCK_TIMEOUT = 30
FIRST = {"name": "first"}

SOURCE = '''
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import injector
import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from powerstrip import Clock, Model, Plugin, Principal, Problem, UnitOfWork
from powerstrip.idempotency import idempotent

NAME = "__NAME__"
blp = Blueprint(NAME, __name__)


class Thing(Model):
    __tablename__ = f"{NAME}_things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    caller: Mapped[str] = mapped_column(String(50))


class ThingSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True)


class MovableClock(Clock):
    """Time stands still but for the test's moves (no test depends on how fast it runs)."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current = self.now() + timedelta(seconds=seconds)


class Gate:
    """Once armed, holds the next request inside its view until the test opens it."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.opened = threading.Event()

    def pass_through(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            self.opened.wait(30)


class WorkerKilled(BaseException):
    """What a dying worker raises through the view (SystemExit, say): no error handler runs."""


class CallerAuthenticator:
    credentials: ClassVar[tuple[str, ...]] = ("X-Test-Caller",)

    def authenticate(self, sent: Any) -> Principal | None:
        caller = sent.headers["X-Test-Caller"]
        if caller == "refused":
            return Principal.refused("Unknown caller.")
        return Principal.of(caller, "test")


class Things:
    @injector.inject
    def __init__(self, uow: UnitOfWork, gate: Gate) -> None:
        self.uow = uow
        self.gate = gate

    def create(self, name: str, caller: str) -> Thing:
        self.gate.pass_through()
        with self.uow as session:
            thing = Thing(name=name, caller=caller)
            session.add(thing)
        return thing


def bindings(binder: injector.Binder) -> None:
    binder.bind(Clock, to=MovableClock())
    binder.bind(Gate, to=Gate())


@blp.route("/things", methods=["POST"])
@blp.arguments(ThingSchema)
@blp.response(201, ThingSchema)
@idempotent
def create_thing(body: dict[str, Any], things: Things, principal: Principal) -> Any:
    """Create a thing."""
    if "X-Fail" in request.headers:
        raise Problem(503, "Not now.", headers={"Retry-After": "1"})
    thing = things.create(body["name"], principal.subject or "anonymous")
    return thing, {"Location": f"/api/v1/{NAME}/things/{thing.id}", "X-Not-Stored": "1"}


@blp.route("/crash", methods=["POST"])
@blp.response(201, ThingSchema)
@idempotent
def crash() -> Any:
    """Die mid-request."""
    raise WorkerKilled("killed")


@blp.route("/others")
class Others(MethodView):
    @blp.arguments(ThingSchema)
    @blp.response(201, ThingSchema)
    @idempotent
    def post(self, body: dict[str, Any]) -> Any:
        """Another operation."""
        return {"id": 0, "name": f"other {body['name']}"}

    @blp.response(200, ThingSchema(many=True))
    def get(self) -> Any:
        """Not marked (and safe)."""
        return []


plugin = Plugin(
    name=NAME,
    version="1.0",
    blueprints=[blp],
    modules=[bindings],
    authenticators=[CallerAuthenticator],
)
'''


@pytest.fixture
def name(installer: Installer) -> str:
    """A fresh plugin per test (its table joins the shared metadata under a new name)."""
    plugin = f"idem{uuid.uuid4().hex[:8]}"
    installer.install(plugin, SOURCE.replace("__NAME__", plugin))
    return plugin


def serve(make_app: AppFactory, name: str, **overrides: Any) -> Flask:
    """The app with only the test plugin, migrated, and the plugin's table created."""
    app = make_app(
        PLUGINS=[name],
        RATELIMIT_ENABLED=False,
        IDEMPOTENCY_KEY_TTL=TTL,
        IDEMPOTENCY_LOCK_TIMEOUT=LOCK_TIMEOUT,
        **overrides,
    )
    upgrade(app)
    database: Database = app.extensions[DATABASE]
    Model.metadata.tables[f"{name}_things"].create(database.engine)
    return app


@pytest.fixture
def app(make_app: AppFactory, name: str) -> Flask:
    return serve(make_app, name)


def plugin_module(app: Flask, name: str) -> ModuleType:
    return importlib.import_module(str(app.extensions[PLUGINS][name].module))


def injected(app: Flask, name: str, kind: str) -> Any:
    """The app's instance of one of the plugin's classes (``MovableClock`` is bound to Clock)."""
    wanted = Clock if kind == "Clock" else getattr(plugin_module(app, name), kind)
    return app.extensions[INJECTOR].get(wanted)


def post(
    client: FlaskClient,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = "key-1",
    caller: str | None = "ann",
    extra: dict[str, str] | None = None,
) -> TestResponse:
    sent = {"Idempotency-Key": key, "X-Test-Caller": caller, **(extra or {})}
    return client.post(
        path,
        json=FIRST if body is None else body,
        headers={header: value for header, value in sent.items() if value is not None},
    )


def things(app: Flask, name: str) -> list[tuple[str, str]]:
    """(name, caller) of every row the plugin created."""
    engine = app.extensions[DATABASE].engine
    with engine.connect() as connection:
        table = Model.metadata.tables[f"{name}_things"]
        rows = connection.execute(sa.select(table.c.name, table.c.caller).order_by(table.c.id))
        return [(row.name, row.caller) for row in rows]


def keys(app: Flask) -> list[sa.RowMapping]:
    engine = app.extensions[DATABASE].engine
    with engine.connect() as connection:
        statement = sa.select(IdempotencyKey.__table__).order_by(IdempotencyKey.key)
        return list(connection.execute(statement).mappings())


def replayed(response: TestResponse) -> bool:
    return response.headers.get("Idempotent-Replayed") == "true"


def test_the_marked_operations_are_found_once_at_startup(app: Flask, name: str) -> None:
    mine = {operation for operation in idempotent_operations(app) if operation[0].startswith(name)}
    assert mine == {
        (f"{name}.create_thing", "POST"),
        (f"{name}.crash", "POST"),
        (f"{name}.Others", "POST"),  # the class-based view's POST only, never its GET
    }


def test_a_repeat_replays_the_first_answer(app: Flask, client: FlaskClient, name: str) -> None:
    path = f"/api/v1/{name}/things"
    first = post(client, path)
    assert first.status_code == 201
    assert not replayed(first)
    assert first.headers["Location"] == f"/api/v1/{name}/things/{first.json['id']}"  # type: ignore[index]

    again = post(client, path)
    assert again.status_code == 201
    assert replayed(again)
    assert again.get_data() == first.get_data()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert "X-Not-Stored" not in again.headers  # only Location, ETag and Content-Type are kept
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]  # the host's own hooks
    assert again.headers["Cache-Control"] == "no-store"

    # The same JSON, written differently, is the same request.
    rewritten = client.post(
        path,
        data='{ "name" :  "first" }',
        content_type="application/json",
        headers={"Idempotency-Key": "key-1", "X-Test-Caller": "ann"},
    )
    assert replayed(rewritten)
    assert rewritten.get_data() == first.get_data()

    assert things(app, name) == [("first", "ann")]
    [row] = keys(app)
    assert (row["caller"], row["operation"], row["key"]) == ("ann", f"{name}.create_thing", "key-1")
    assert row["completed"]
    assert row["status"] == 201
    assert row["headers"] == {
        "Location": first.headers["Location"],
        "Content-Type": "application/json",
    }
    assert row["expires_at"] - row["created_at"] == timedelta(seconds=TTL)


def test_a_key_used_with_another_request_is_a_422(
    app: Flask, client: FlaskClient, name: str
) -> None:
    path = f"/api/v1/{name}/things"
    assert post(client, path).status_code == 201
    for other in (
        post(client, path, {"name": "second"}),  # another body
        post(client, f"{path}?draft=1"),  # another query
        client.post(  # not JSON after all: its bytes as sent
            path,
            data='{"name": "first"',
            content_type="application/json",
            headers={"Idempotency-Key": "key-1", "X-Test-Caller": "ann"},
        ),
    ):
        assert other.status_code == 422
        assert other.mimetype == "application/problem+json"
        assert other.json["detail"] == "This Idempotency-Key was used with another request."  # type: ignore[index]
        assert other.json["errors"] == {"Idempotency-Key": ["Already used with another request."]}  # type: ignore[index]
    assert things(app, name) == [("first", "ann")]


def test_an_answer_that_is_not_a_success_is_not_stored(
    app: Flask, client: FlaskClient, name: str
) -> None:
    path = f"/api/v1/{name}/things"
    failed = post(client, path, extra={"X-Fail": "1"})
    assert failed.status_code == 503
    assert keys(app) == []  # the key is free again
    retried = post(client, path)
    assert retried.status_code == 201
    assert not replayed(retried)
    assert things(app, name) == [("first", "ann")]

    invalid = post(client, path, {"name": 5}, key="key-2")  # the view's own validation: 422
    assert invalid.status_code == 422
    assert [row["key"] for row in keys(app)] == ["key-1"]


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "x" * 1000, f'"{"x" * 256}"', '""', "clé", "tab\x7f", "line\tfeed", "nul\x00"],
)
def test_an_invalid_key_is_a_422(app: Flask, client: FlaskClient, name: str, key: str) -> None:
    response = post(client, f"/api/v1/{name}/things", key=key)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"] == {  # type: ignore[index]
        "Idempotency-Key": ["Use 1 to 255 printable ASCII characters."]
    }
    assert things(app, name) == []
    assert keys(app) == []


def test_the_longest_key_is_valid(app: Flask, client: FlaskClient, name: str) -> None:
    key = "~" * 255
    assert post(client, f"/api/v1/{name}/things", key=key).status_code == 201
    assert replayed(post(client, f"/api/v1/{name}/things", key=key))


def test_long_keys_are_kept_whole_never_truncated(
    app: Flask, client: FlaskClient, name: str
) -> None:
    """Keys sharing their first 254 characters are two keys: neither replays the other."""
    first, second = "k" * 254 + "1", "k" * 254 + "2"
    path = f"/api/v1/{name}/things"
    assert post(client, path, key=first).status_code == 201
    answer = post(client, path, key=second)
    assert answer.status_code == 201
    assert not replayed(answer)
    assert [row["key"] for row in keys(app)] == [first, second]
    assert len(things(app, name)) == 2


def test_without_a_caller_the_key_is_ignored(app: Flask, client: FlaskClient, name: str) -> None:
    path = f"/api/v1/{name}/things"
    answers = [
        post(client, path, caller=None),
        post(client, path, caller=None),
        post(client, path, caller="refused"),  # credentials refused: anonymous
        post(client, path, key=None),  # a caller without a key
        post(client, path, key=None),
    ]
    assert [answer.status_code for answer in answers] == [201] * 5
    assert not any(replayed(answer) for answer in answers)
    assert len(things(app, name)) == 5
    assert keys(app) == []


def test_operations_not_marked_ignore_the_key(app: Flask, client: FlaskClient, name: str) -> None:
    headers = {"Idempotency-Key": "", "X-Test-Caller": "ann"}  # not even validated
    assert client.get(f"/api/v1/{name}/others", headers=headers).status_code == 200
    assert keys(app) == []


def test_keys_are_scoped_per_caller_and_per_operation(
    app: Flask, client: FlaskClient, name: str
) -> None:
    ann = post(client, f"/api/v1/{name}/things", caller="ann")
    bob = post(client, f"/api/v1/{name}/things", caller="bob")
    other = post(client, f"/api/v1/{name}/others", caller="ann")
    assert [ann.status_code, bob.status_code, other.status_code] == [201, 201, 201]
    assert not any(replayed(answer) for answer in (ann, bob, other))
    assert other.json == {"id": 0, "name": "other first"}
    assert things(app, name) == [("first", "ann"), ("first", "bob")]
    assert sorted((row["caller"], row["operation"]) for row in keys(app)) == [
        ("ann", f"{name}.Others"),
        ("ann", f"{name}.create_thing"),
        ("bob", f"{name}.create_thing"),
    ]
    assert replayed(post(client, f"/api/v1/{name}/others", caller="ann"))


def test_a_subject_too_long_for_the_column_is_scoped_by_its_digest(
    app: Flask, client: FlaskClient, name: str
) -> None:
    long_subject = "x" * 300  # (the test plugin's things table would not hold it: /others)
    first = post(client, f"/api/v1/{name}/others", caller=long_subject)
    assert first.status_code == 201
    assert replayed(post(client, f"/api/v1/{name}/others", caller=long_subject))
    assert [row["caller"] for row in keys(app)] == [caller_key(long_subject)]
    assert caller_key(long_subject).startswith("sha256:")


def test_a_value_the_column_cannot_hold_is_a_422_from_the_real_driver(
    app: Flask, client: FlaskClient, name: str
) -> None:
    """The test plugin's caller column holds 50 characters: the SDK's Model refuses more on
    every database (PostgreSQL would too, 22001; SQLite would have stored it)."""
    answer = post(client, f"/api/v1/{name}/things", caller="y" * 60, key="long")
    assert answer.status_code == 422
    assert "varying" not in answer.get_data(as_text=True)
    assert keys(app) == []  # a refused request frees its key


def test_the_quoted_key_form_and_the_query_order_do_not_matter(
    app: Flask, client: FlaskClient, name: str
) -> None:
    first = post(client, f"/api/v1/{name}/things?a=1&b=2", key="abc")
    assert first.status_code == 201
    again = post(client, f"/api/v1/{name}/things?b=2&a=1", key='"abc"')
    assert replayed(again)
    assert post(client, f"/api/v1/{name}/things?a=2&b=2", key="abc").status_code == 422


def test_an_expired_key_runs_again_and_purge_deletes_expired_keys(
    app: Flask, client: FlaskClient, name: str
) -> None:
    path = f"/api/v1/{name}/things"
    clock = injected(app, name, "Clock")
    assert post(client, path, key="a").status_code == 201
    clock.advance(TTL - 1)
    assert replayed(post(client, path, key="a"))
    clock.advance(1)  # expired: forgotten, so the request runs again
    again = post(client, path, key="a")
    assert again.status_code == 201
    assert not replayed(again)
    assert post(client, path, key="b").status_code == 201
    assert len(things(app, name)) == 3

    clock.advance(TTL)
    assert post(client, path, key="c").status_code == 201
    runner = app.test_cli_runner()
    purged = runner.invoke(args=["idempotency", "purge"])
    assert purged.exit_code == 0, purged.output
    assert purged.output == "deleted 2 expired idempotency key(s)\n"
    assert [row["key"] for row in keys(app)] == ["c"]
    assert runner.invoke(args=["idempotency", "purge"]).output == (
        "deleted 0 expired idempotency key(s)\n"
    )


@contextmanager
def in_flight(app: Flask, name: str, send: Callable[[], TestResponse]) -> Iterator[list[Any]]:
    """Run ``send`` in a thread, held inside the view until the block ends; yields its answer
    (a one-item list, filled once the block has ended)."""
    gate = injected(app, name, "Gate")
    gate.armed = True
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(send()))
    thread.start()
    try:
        assert gate.entered.wait(30), "the request never reached the view"
        yield answer
    finally:
        gate.opened.set()
        thread.join(30)
        assert not thread.is_alive()


def test_a_request_in_flight_is_a_409_until_the_lock_times_out(
    app: Flask, client: FlaskClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/api/v1/{name}/things"
    clock = injected(app, name, "Clock")
    with in_flight(app, name, lambda: post(app.test_client(), path, {"name": "slow"})) as slow:
        busy = post(client, path, {"name": "slow"})
        assert busy.status_code == 409
        assert busy.headers["Retry-After"] == "1"
        assert busy.mimetype == "application/problem+json"
        assert post(client, path, {"name": "other"}).status_code == 422  # checked first

        clock.advance(LOCK_TIMEOUT)  # as if its worker had died: a retry takes the key over
        taker = post(client, path, {"name": "slow"})
        assert taker.status_code == 201
        assert not replayed(taker)
    [original] = slow
    assert original.status_code == 201  # it still answers, but its answer is not stored
    assert original.headers["Location"] != taker.headers["Location"]
    assert any("taken over" in record.getMessage() for record in caplog.records)

    replay = post(client, path, {"name": "slow"})
    assert replayed(replay)
    assert replay.headers["Location"] == taker.headers["Location"]
    assert len(things(app, name)) == 2


def test_a_request_that_dies_releases_its_key(app: Flask, client: FlaskClient, name: str) -> None:
    killed = plugin_module(app, name).WorkerKilled
    for _ in range(2):  # the second time too: no claim was left behind (no 409)
        with pytest.raises(killed):  # no body: the empty body is what the key was used with
            client.post(
                f"/api/v1/{name}/crash", headers={"Idempotency-Key": "k", "X-Test-Caller": "ann"}
            )
        assert keys(app) == []


@contextmanager
def before_statement(
    app: Flask, starts: str, action: Callable[[], None], times: int | None = None
) -> Iterator[list[int]]:
    """Run ``action`` just before the host's statements on its table that start with
    ``starts`` (``times`` times at most); yields how many times it ran (a one-item list)."""
    engine = app.extensions[DATABASE].engine
    done = [0]

    def hook(*args: Any) -> None:
        statement: str = args[2]
        if statement.startswith(starts) and TABLE in statement and done[0] != times:
            done[0] += 1
            action()

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield done
    finally:
        event.remove(engine, "before_cursor_execute", hook)


@pytest.fixture
def other(database_url: str) -> Iterator[sa.Engine]:
    """Another client of the database: the request that races the host's."""
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


def key_holder(app: Flask, name: str, engine: sa.Engine) -> Callable[[datetime], None]:
    """Claims ann's key-1 (for ``FIRST``) as another request would, locked at the time given."""
    with app.test_request_context(f"/api/v1/{name}/things", method="POST", json=FIRST):
        claimed_for = fingerprint(request)

    def hold(locked_at: datetime) -> None:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(IdempotencyKey).values(
                    caller="ann",
                    operation=f"{name}.create_thing",
                    key="key-1",
                    fingerprint=claimed_for,
                    completed=False,
                    created_at=locked_at,
                    expires_at=locked_at + timedelta(seconds=TTL),
                    locked_at=locked_at,
                )
            )

    return hold


def let_go(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.delete(IdempotencyKey))


def test_a_key_released_between_the_insert_and_the_read_is_claimed_again(
    app: Flask, client: FlaskClient, name: str, other: sa.Engine
) -> None:
    clock = injected(app, name, "Clock")
    clock.advance(0)
    hold = key_holder(app, name, other)
    with (
        before_statement(app, "INSERT", lambda: hold(clock.now()), times=1),
        before_statement(app, "SELECT", lambda: let_go(other), times=1),
    ):
        response = post(client, f"/api/v1/{name}/things")
    assert response.status_code == 201
    assert not replayed(response)
    assert [row["completed"] for row in keys(app)] == [True]


def test_a_key_that_keeps_changing_hands_is_a_409(
    app: Flask, client: FlaskClient, name: str, other: sa.Engine
) -> None:
    clock = injected(app, name, "Clock")
    clock.advance(0)
    hold = key_holder(app, name, other)
    with (
        before_statement(app, "INSERT", lambda: hold(clock.now())) as inserts,
        before_statement(app, "SELECT", lambda: let_go(other)),
    ):
        response = post(client, f"/api/v1/{name}/things")
    assert response.status_code == 409  # it gives up after a few attempts
    assert inserts == [CLAIM_ATTEMPTS]
    assert things(app, name) == []


def test_only_one_retry_takes_a_stale_key_over(
    app: Flask, client: FlaskClient, name: str, other: sa.Engine
) -> None:
    clock = injected(app, name, "Clock")
    clock.advance(0)
    key_holder(app, name, other)(clock.now() - timedelta(seconds=LOCK_TIMEOUT))

    def take_over_first() -> None:
        with other.begin() as connection:
            connection.execute(sa.update(IdempotencyKey).values(locked_at=clock.now()))

    with before_statement(app, "UPDATE", take_over_first, times=1):
        lost = post(client, f"/api/v1/{name}/things")
    assert lost.status_code == 409  # the other retry won; it is running now
    assert things(app, name) == []


def test_an_answer_that_cannot_be_stored_still_goes_out(
    app: Flask, client: FlaskClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/api/v1/{name}/things"

    def database_gone() -> None:
        raise OperationalError("UPDATE host_idempotency_keys", {}, Exception("server closed"))

    with before_statement(app, "UPDATE", database_gone):
        first = post(client, path)
    assert first.status_code == 201
    assert not replayed(first)
    [record] = [r for r in caplog.records if r.name == "app.idempotency"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "idempotency key not settled"

    # The key stays claimed without an answer (the crash window): 409 until the lock times
    # out, then a retry runs the operation again.
    assert post(client, path).status_code == 409
    injected(app, name, "Clock").advance(LOCK_TIMEOUT)
    assert post(client, path).status_code == 201
    assert replayed(post(client, path))
    assert len(things(app, name)) == 2


def test_it_works_inside_one_test_transaction(make_app: AppFactory, name: str) -> None:
    """As under the ``rollback_app`` fixture: every session joins one transaction (savepoints)."""
    app = serve(make_app, name)
    database: Database = app.extensions[DATABASE]
    client = app.test_client()
    with database.engine.connect() as connection:
        transaction = connection.begin()
        database.use_connection(connection)
        path = f"/api/v1/{name}/things"
        assert post(client, path).status_code == 201
        assert replayed(post(client, path))
        assert post(client, path, {"name": "other"}).status_code == 422
        transaction.rollback()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("IDEMPOTENCY_KEY_TTL", 59, "greater than or equal to 60"),
        ("IDEMPOTENCY_LOCK_TIMEOUT", 0, "greater than or equal to 1"),
        ("IDEMPOTENCY_LOCK_TIMEOUT", "5", "Not a valid integer"),
        ("IDEMPOTENCY_LOCK_TIMEOUT", 86400, "longer than IDEMPOTENCY_LOCK_TIMEOUT"),
    ],
)
def test_the_durations_are_validated(
    make_app: AppFactory, key: str, value: object, message: str
) -> None:
    shown = "IDEMPOTENCY_KEY_TTL" if "longer than" in message else key
    with pytest.raises(ConfigError, match=f"^configuration key {shown}: .*{message}"):
        make_app(**{key: value})


def test_the_host_table_is_migrated_on_the_host_branch(app: Flask, name: str) -> None:
    revisions = sorted((ALEMBIC_DIRECTORY / "versions").glob("*.py"))
    assert TABLE in tables_created(revisions)
    # The plugins' check reports the test plugin's table (it has no migrations), never the host's.
    assert unmigrated_tables(app, app.extensions[PLUGINS]) == {name: [f"{name}_things"]}


def test_no_plugin_may_take_the_hosts_namespace(installer: Installer, make_app: AppFactory) -> None:
    installer.install("host")
    installer.install("host_tools")
    installer.install("hostel")
    records = make_app(PLUGINS_STRICT=False).extensions[PLUGINS]
    for reserved in ("host", "host_tools"):
        assert records[reserved].state == "failed"
        assert records[reserved].reason == "reserved name: host and host_... name the host's tables"
    assert records["hostel"].state == "enabled"


RETRIES = 20


@pytest.mark.e2e
def test_concurrent_retries_through_gunicorn_create_one_row(
    installer: Installer, make_app: AppFactory, name: str, tmp_path: Path
) -> None:
    with temporary_postgres_database() as url:
        app = serve(make_app, name, DATABASE_URL=url)
        app.extensions[DATABASE].engine.dispose()
        env = {
            "POWERSTRIP_DATABASE_URL": url,
            "POWERSTRIP_PLUGINS": json.dumps([name]),
            "POWERSTRIP_RATELIMIT_ENABLED": "false",
            "GUNICORN_THREADS": "8",
            "PYTHONPATH": str(installer.root),
        }
        barrier = Barrier(RETRIES)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": "once",
            "X-Test-Caller": "ann",
        }

        def call(_: int) -> tuple[int, str | None, bytes]:
            barrier.wait(30)
            response, body = server.request(
                "POST", f"/api/v1/{name}/things", headers, json.dumps(FIRST).encode()
            )
            return response.status, response.getheader("Idempotent-Replayed"), body

        with running(tmp_path, env, workers=2) as server, ThreadPoolExecutor(RETRIES) as pool:
            answers = list(pool.map(call, range(RETRIES)))
            final, body = server.request(
                "POST", f"/api/v1/{name}/things", headers, json.dumps(FIRST).encode()
            )
        statuses = sorted(status for status, _, _ in answers)
        assert set(statuses) <= {201, 409}, answers  # never a 500
        fresh = [answer for answer in answers if answer[0] == 201 and answer[1] is None]
        assert len(fresh) == 1, answers
        replays = [answer for answer in answers if answer[1] == "true"]
        assert all(answer[2] == fresh[0][2] for answer in replays)
        assert len(fresh) + len(replays) + statuses.count(409) == RETRIES
        print(f"{RETRIES} retries: 1 ran, {len(replays)} replayed, {statuses.count(409)} got 409")
        assert (final.status, final.getheader("Idempotent-Replayed"), body) == (
            201,
            "true",
            fresh[0][2],
        )
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                table = Model.metadata.tables[f"{name}_things"]
                count = connection.scalar(sa.select(sa.func.count()).select_from(table))
        finally:
            engine.dispose()
        assert count == 1
