"""Authentication runs once per request in a host hook, outside the injector's lock.

injector resolves every dependency under one process-wide lock; if authentication ran inside a
provider, the requests of one gunicorn worker would wait for each other's credential look-ups.
These tests serve real HTTP from one gunicorn process with 4 threads on PostgreSQL.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import pytest
from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from powerstrip.http import environ_key
from tests.conftest import AppFactory, upgrade
from tests.plugin_fixtures import Installer, plugin_source
from tests.plugins.accounts.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.services import temporary_postgres_database
from tests.test_gunicorn import Server, running

WAIT = 0.2  # seconds of I/O per request
REQUESTS = 8
THREADS = 4

SLOW = """
from sqlalchemy import text
from sqlalchemy.orm import Session
from powerstrip import Principal, requires, request_scope


class SlowStore:
    @inject
    def __init__(self, session: Session) -> None:
        self.session = session

    def wait(self) -> None:
        self.session.execute(text("SELECT pg_sleep({wait})"))


class SlowAuthenticator:
    '''A credential store that takes {wait} s to answer (a remote directory, say).'''

    credentials = ("X-Slow-Token",)

    @inject
    def __init__(self, store: SlowStore) -> None:
        self.store = store

    def authenticate(self, request):
        if "X-Slow-Token" not in request.headers:
            return None
        self.store.wait()
        return Principal.of("slow-" + request.headers["X-Slow-Token"], "token", {{"slow:use"}})


@blp.route("/wait")
@blp.response(200)
@requires()
def wait(store: SlowStore, principal: Principal):
    '''Wait on the database, as a service doing I/O would.'''
    store.wait()
    return {{"subject": principal.require().subject}}


@blp.route("/whoami")
@blp.response(200)
@requires("slow:use")
def whoami(principal: Principal):
    return {{"subject": principal.require().subject}}
"""


def concurrently(
    server: Server, path: str, headers: list[dict[str, str]]
) -> tuple[float, list[int]]:
    """Send one request per header set at once (behind a barrier); wall time and statuses."""
    barrier = Barrier(len(headers))

    def call(extra: dict[str, str]) -> int:
        barrier.wait()
        response, _ = server.request("GET", path, extra)
        return response.status

    with ThreadPoolExecutor(len(headers)) as pool:
        started = time.perf_counter()
        statuses = list(pool.map(call, headers))
        return time.perf_counter() - started, statuses


@pytest.fixture
def database() -> Iterator[str]:
    with temporary_postgres_database() as url:
        yield url


def api_key(app: Flask) -> str:
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
    )
    assert created.exit_code == 0, created.output
    made = runner.invoke(
        args=["accounts", "create-api-key", "--email", ADMIN_EMAIL, "--name", "load"]
    )
    assert made.exit_code == 0, made.output
    return made.output.strip().rsplit(" ", 1)[1]


def test_requests_of_one_worker_do_not_wait_for_each_others_authentication(
    installer: Installer,
    make_app: AppFactory,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installer.install(
        "slow",
        plugin_source(
            "slow", SLOW.replace("{wait}", str(WAIT)), authenticators="[SlowAuthenticator]"
        ),
    )
    app = make_app(DATABASE_URL=database)
    upgrade(app)
    key = api_key(app)
    app.extensions["powerstrip.database"].engine.dispose()
    env = {
        "POWERSTRIP_DATABASE_URL": database,
        "POWERSTRIP_PLUGINS": '["accounts", "slow"]',
        "POWERSTRIP_RATELIMIT_ENABLED": "false",
        "GUNICORN_THREADS": str(THREADS),
        "PYTHONPATH": str(installer.root),
    }
    with running(tmp_path, env, workers=1) as server:
        by_key = [{"X-API-Key": key}] * REQUESTS
        by_slow_token = [{"X-Slow-Token": str(n)} for n in range(REQUESTS)]
        concurrently(server, "/api/v1/slow/wait", by_key)  # warm up: connections, key touch
        # API keys (the accounts plugin) and a view whose service waits WAIT on I/O.
        keyed, statuses = concurrently(server, "/api/v1/slow/wait", by_key)
        assert statuses == [200] * REQUESTS
        # An authenticator that itself waits WAIT on I/O, and a view that does none.
        slow, statuses = concurrently(server, "/api/v1/slow/whoami", by_slow_token)
        assert statuses == [200] * REQUESTS
        # Bad credentials are refused before the view: nobody waits for its I/O.
        bad_keys = [{"X-API-Key": f"psk_{n:012d}_wrong"} for n in range(REQUESTS)]
        refused, statuses = concurrently(server, "/api/v1/slow/wait", bad_keys)
        assert statuses == [401] * REQUESTS
    serial = REQUESTS * WAIT
    rounds = REQUESTS / THREADS * WAIT  # what 4 threads that never wait for each other take
    print(
        f"{REQUESTS} requests, {THREADS} threads: API key {keyed:.3f}s, "
        f"slow authenticator {slow:.3f}s, bad keys {refused:.3f}s"
    )
    assert rounds <= keyed < serial * 0.6, keyed
    assert rounds <= slow < serial * 0.6, slow
    assert refused < WAIT, refused


UNBUILDABLE = """
from typing import Protocol, runtime_checkable


@runtime_checkable
class Unbound(Protocol):
    def get(self) -> str: ...


class NeedsUnbound:
    credentials = ("X-Gate",)

    @inject
    def __init__(self, dependency: Unbound) -> None:
        self.dependency = dependency

    def authenticate(self, request):
        return None
"""


def test_an_authenticator_that_cannot_be_built_stops_startup(
    installer: Installer, make_app: AppFactory
) -> None:
    from app import PluginError  # noqa: PLC0415

    installer.install("gate", plugin_source("gate", UNBUILDABLE, authenticators="[NeedsUnbound]"))
    with pytest.raises(PluginError, match=r"^plugin 'gate': authenticator NeedsUnbound cannot"):
        make_app()
    lenient = make_app(PLUGINS_STRICT=False)  # skipped and reported, the rest serves
    assert lenient.extensions["powerstrip.plugins"]["gate"].state == "failed"
    assert lenient.test_client().get("/api/v1/health/live").status_code == 200


def test_without_authenticators_every_request_is_anonymous(
    installer: Installer, make_app: AppFactory
) -> None:
    installer.install("whoami", plugin_source("whoami", WHOAMI))
    client = make_app(PLUGINS=["whoami"]).test_client()
    response = client.get("/api/v1/whoami/me", headers={"Authorization": "Bearer x"})
    assert response.get_json() == {"kind": "anonymous", "authenticated": False}
    assert client.get("/api/v1/whoami/secret").status_code == 401


WHOAMI = """
from powerstrip import Principal, requires


@blp.route("/me")
@blp.response(200)
def me(principal: Principal):
    return {{"kind": principal.kind, "authenticated": principal.authenticated}}


@blp.route("/secret")
@blp.response(200)
@requires("x:y")
def secret():
    return {{}}
"""


COUNTED = """
from powerstrip import Principal

BUILT = []


class HeaderAuthenticator:
    credentials = ("X-Counted",)

    def __init__(self) -> None:
        BUILT.append(self)

    def authenticate(self, request):
        return Principal.of(request.headers["X-Counted"], "header")


@blp.route("/me")
@blp.response(200)
def me(principal: Principal):
    return {{"kind": principal.kind, "subject": principal.subject}}


@blp.route("/cached")
@blp.response(200)
def cached():
    return {{}}, 200, {{"Cache-Control": "private, max-age=60"}}
"""


def test_requests_without_its_credentials_never_build_an_authenticator(
    installer: Installer, make_app: AppFactory
) -> None:
    package = installer.install(
        "counted", plugin_source("counted", COUNTED, authenticators="[HeaderAuthenticator]")
    )
    client = make_app(PLUGINS=["counted"]).test_client()
    built = sys.modules[package].BUILT
    before = len(built)  # startup builds it once, to check its dependencies
    assert client.get("/api/v1/counted/me").get_json() == {"kind": "anonymous", "subject": None}
    assert len(built) == before
    answer = client.get("/api/v1/counted/me", headers={"X-Counted": "ann"}).get_json()
    assert answer == {"kind": "header", "subject": "ann"}
    assert len(built) == before + 1
    answer = client.get("/api/v1/counted/me", headers={"x-counted": "bob"}).get_json()
    assert answer == {"kind": "header", "subject": "bob"}  # header names are case-blind


def test_credential_headers_are_looked_up_as_werkzeug_looks_them_up() -> None:
    names = ["X-API-Key", "authorization", "Content-Type", "Content-Length"]
    keys = set(map(environ_key, names))
    assert keys == {"HTTP_X_API_KEY", "HTTP_AUTHORIZATION", "CONTENT_TYPE", "CONTENT_LENGTH"}
    environ = dict.fromkeys(keys, "1")
    assert all(name in EnvironHeaders(environ) for name in ("X-API-Key", "Content-Type"))


@pytest.mark.parametrize(
    ("declaration", "reason"),
    [
        ("credentials = None", "must name the headers carrying its credentials"),
        ("credentials = ()", "must name the headers carrying its credentials"),
        ("credentials = ('',)", "must name the headers carrying its credentials"),
        ("authenticate = None", "is not a class with an authenticate(request) method"),
    ],
)
def test_an_authenticator_must_follow_the_contract(
    installer: Installer, make_app: AppFactory, declaration: str, reason: str
) -> None:
    from app import PluginError  # noqa: PLC0415

    body = f"""
class Broken:
    credentials = ("X-Broken",)

    def authenticate(self, request):
        return None

    {declaration}
"""
    installer.install("broken", plugin_source("broken", body, authenticators="[Broken]"))
    with pytest.raises(
        PluginError, match=rf"^plugin .broken.: authenticator Broken {re.escape(reason)}"
    ):
        make_app()


def test_answers_to_requests_with_credentials_are_not_stored_by_caches(
    installer: Installer, make_app: AppFactory
) -> None:
    installer.install(
        "counted", plugin_source("counted", COUNTED, authenticators="[HeaderAuthenticator]")
    )
    client = make_app(PLUGINS=["counted"]).test_client()
    credentials = {"X-Counted": "ann"}
    assert client.get("/api/v1/counted/me", headers=credentials).headers["Cache-Control"] == (
        "no-store"
    )
    assert "Cache-Control" not in client.get("/api/v1/counted/me").headers  # anonymous
    kept = client.get("/api/v1/counted/cached", headers=credentials)
    assert kept.headers["Cache-Control"] == "private, max-age=60"  # the view's own choice
