"""No log line carries a password, a token, an API key or a SQL statement's parameters.

Every logger is captured at DEBUG (SQLAlchemy's too: each statement and its parameters, each
result row) through ``caplog`` and through the host's own JSON handler on stdout, while the
accounts plugin goes through the conformance suite's bad input and a client's whole life:
login, a failed login, refresh, a reused refresh token, an API key used and revoked, a
password change, logout, tokens sent where they do not belong (the query string). A statement
that fails carrying a marker email ends up in the error log with its traceback: the engine's
``hide_parameters`` keeps the value out of it.

``create_app`` configures logging (``dictConfig`` drops the root logger's handlers and resets
its level), so the capture is attached again after every app is built.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from app.db import DATABASE, Database
from powerstrip.testing import AppFactory as KitAppFactory
from powerstrip.testing import PluginConformance
from tests.conftest import AppFactory, upgrade
from tests.test_gunicorn import running

ACCOUNTS = "/api/v1/accounts"
EMAIL = "owner@example.com"
PASSWORD = "tangerine submarine 7c41 quietly"
WRONG_PASSWORD = "not the password 93d2 at all"
NEW_PASSWORD = "marmalade lighthouse 5e08 gently"
MARKER_EMAIL = "sql-marker-0b6f2c@example.com"
SIGNING_KEY = "log-secrets-signing-key-a1b2c3d4e5f6a7b8c9d0"
SIGNING = {"SIGNING_KEYS": {"k1": SIGNING_KEY}, "CURRENT_KEY": "k1"}
FAILING_PATH = "/test/failing-statement"


@dataclass
class Logs:
    """Everything logged at any level, as text: caplog's records and the JSON lines on stdout."""

    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]
    streams: list[str] = field(default_factory=list)

    def attach(self) -> None:
        """Capture every logger at DEBUG again (an app was just built: it reset logging)."""
        self.caplog.set_level(logging.DEBUG)
        self.caplog.set_level(logging.DEBUG, logger="sqlalchemy")
        root = logging.getLogger()
        if self.caplog.handler not in root.handlers:
            root.addHandler(self.caplog.handler)

    def text(self) -> str:
        """All of it so far; the stdout (and stderr) read here is kept for later calls."""
        captured = self.capsys.readouterr()
        self.streams += [captured.out, captured.err]
        return "\n".join([self.caplog.text, *self.streams])

    def leaked(self, secrets: dict[str, str]) -> list[str]:
        """The names of the secrets found in the logs."""
        logged = self.text()
        return [name for name, secret in secrets.items() if secret in logged]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Logs]:
    captured = Logs(caplog, capsys)
    captured.attach()
    yield captured
    logging.getLogger().removeHandler(caplog.handler)


@pytest.fixture
def powerstrip_make_app(powerstrip_make_app: KitAppFactory, logs: Logs) -> KitAppFactory:
    """The kit's factory (so ``plugin_conformance``'s), capturing again after each build."""

    def make_app(*plugins: str, **kwargs: Any) -> Flask:
        app = powerstrip_make_app(*plugins, **kwargs)
        logs.attach()
        return app

    return make_app


def add_failing_statement(app: Flask) -> None:
    """A route whose SQL fails with MARKER_EMAIL bound (an unknown column, on any database)."""

    def failing_statement() -> str:
        database: Database = app.extensions[DATABASE]
        with database.sessions() as session:
            session.execute(
                text("SELECT id FROM accounts_users WHERE email = :email AND no_such_column = 1"),
                {"email": MARKER_EMAIL},
            )
        return "unreachable"  # pragma: no cover - the statement fails

    app.add_url_rule(FAILING_PATH, view_func=failing_statement)


def client_life(app: Flask) -> dict[str, str]:
    """A client's calls through the accounts API; the secrets it was given or sent."""
    result = app.test_cli_runner().invoke(
        args=["accounts", "create-admin", "--email", EMAIL, "--password", PASSWORD]
    )
    assert result.exit_code == 0, result.output
    client = app.test_client()

    def call(method: str, path: str, expected: int, **kwargs: Any) -> Any:
        response = client.open(f"{ACCOUNTS}{path}", method=method, **kwargs)
        assert response.status_code == expected, response.get_data(as_text=True)
        return response.get_json(silent=True)

    wrong = {"email": EMAIL, "password": WRONG_PASSWORD}
    call("POST", "/tokens", 401, json=wrong)
    first = call("POST", "/tokens", 200, json={"email": EMAIL, "password": PASSWORD})
    second = call("POST", "/tokens/refresh", 200, json={"refresh_token": first["refresh_token"]})
    bearer = {"Authorization": f"Bearer {second['access_token']}"}
    created = call(
        "POST", "/api-keys", 201, json={"name": "ci", "scopes": ["accounts:self"]}, headers=bearer
    )
    api_key = created["key"]
    call("GET", "/users/me", 200, headers={"X-API-Key": api_key})
    # Tokens where they do not belong: in the query string (the access record has the path).
    call("GET", f"/users/me?access_token={second['access_token']}&api_key={api_key}", 401)
    call("DELETE", f"/api-keys/{created['id']}", 204, headers=bearer)
    call("GET", "/users/me", 401, headers={"X-API-Key": api_key})
    change = {"current_password": PASSWORD, "password": NEW_PASSWORD}
    call("PUT", "/users/me/password", 204, json=change, headers=bearer)
    third = call("POST", "/tokens", 200, json={"email": EMAIL, "password": NEW_PASSWORD})
    call("POST", "/tokens/refresh", 401, json={"refresh_token": second["refresh_token"]})
    logout = {"refresh_token": third["refresh_token"]}
    latest = {"Authorization": f"Bearer {third['access_token']}"}  # the change revoked bearer
    call("DELETE", "/tokens", 204, json=logout, headers=latest)
    return {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "new password": NEW_PASSWORD,
        "access token": first["access_token"],
        "refresh token": first["refresh_token"],
        "refreshed access token": second["access_token"],
        "refreshed refresh token": second["refresh_token"],
        "later access token": third["access_token"],
        "later refresh token": third["refresh_token"],
        "API key": api_key,
        "API key's secret": api_key.split("_", 2)[2],
    }


def test_no_secret_reaches_the_logs(
    logs: Logs, make_app: AppFactory, plugin_conformance: PluginConformance
) -> None:
    plugin_conformance("accounts", config={"accounts": SIGNING})

    app = make_app(accounts=SIGNING)
    upgrade(app)
    add_failing_statement(app)
    logs.attach()
    secrets = client_life(app)
    failed = app.test_client().get(FAILING_PATH)
    assert failed.status_code in {500, 503}  # SQLite: no such column; PostgreSQL: undefined

    logged = logs.text()
    assert "no_such_column" in logged  # the failing statement was logged, with its traceback
    assert "accounts_users" in logged  # SQLAlchemy's statements are captured (DEBUG)
    assert logs.leaked({**secrets, "marker email": MARKER_EMAIL, "signing key": SIGNING_KEY}) == []
    assert "[SQL parameters hidden due to hide_parameters=True]" in logged


def test_the_capture_sees_what_is_logged(logs: Logs, make_app: AppFactory) -> None:
    """The check above can fail: a value logged through any path is found."""
    app = make_app()
    logs.attach()
    logging.getLogger("some.library").debug("debug %s", "first-value")
    print("second-value")  # as the JSON handler writes: on stdout
    app.logger.error("failed", exc_info=RuntimeError("third-value"))
    assert logs.leaked({"a": "first-value", "b": "second-value", "c": "third-value"}) == [
        "a",
        "b",
        "c",
    ]


@pytest.mark.e2e
def test_gunicorns_access_log_has_no_query_user_or_referrer(tmp_path: Path) -> None:
    token = "query-token-5d1e9a"
    basic = base64.b64encode(b"basic-user-77c3:basic-password-2b8f").decode()
    with running(tmp_path, {"GUNICORN_ACCESSLOG": "1"}, workers=1) as server:
        response, _ = server.request(
            "GET",
            f"/api/v1/health/live?access_token={token}",
            {"Authorization": f"Basic {basic}", "Referer": f"https://x.example/?t={token}"},
        )
        assert response.status == 200
    records = [line for line in server.log_lines() if line["logger"] == "gunicorn.access"]
    # ["127.0.0.1", '"GET', "/api/v1/health/live", 'HTTP/1.1"', "200", ...]: the startup
    # probe's request first, then this one
    assert str(records[-1]["message"]).split()[:5] == [
        "127.0.0.1",
        '"GET',
        "/api/v1/health/live",
        'HTTP/1.1"',
        "200",
    ]
    logged = server.log.read_text()
    assert [secret for secret in (token, "basic-user-77c3", basic) if secret in logged] == []
