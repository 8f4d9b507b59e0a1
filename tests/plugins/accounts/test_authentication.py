"""The accounts plugin's Authenticator and Directory, as the host uses them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import event

from tests.conftest import AppFactory, upgrade
from tests.plugins.accounts.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api

ME = "/api/v1/accounts/users/me"


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app runs inside the block."""
    seen: list[str] = []
    engine = app.extensions["powerstrip.database"].engine

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("headers", "queries"),
    [
        ({"Authorization": "Basic abc"}, 0),  # wrong scheme: refused without a look-up
        ({"Authorization": "Bearer not-a-jwt"}, 0),  # malformed token: refused without one
        ({"X-API-Key": "not-a-key"}, 0),  # not shaped like a key
        ({"X-API-Key": "psk_000000000000_secret"}, 1),  # unknown prefix: one look-up
    ],
)
def test_bad_credentials_are_refused_before_the_view_with_bounded_work(
    api: Api, headers: dict[str, str], queries: int
) -> None:
    with statements(api.app) as seen:
        response = api.client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert len(seen) == queries, seen


def test_a_good_key_costs_its_look_ups_and_writes_its_use_once_a_minute(api: Api) -> None:
    created = api.client.post(
        "/api/v1/accounts/api-keys",
        json={"name": "ci", "scopes": ["accounts:self"]},
        headers=api.admin_headers(),
    ).get_json()
    headers = {"X-API-Key": created["key"]}
    with statements(api.app) as first:
        assert api.client.get(ME, headers=headers).status_code == 200
    with statements(api.app) as second:
        assert api.client.get(ME, headers=headers).status_code == 200
    writes = [s for s in first if s.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1  # last_used_at
    assert not [s for s in second if s.lstrip().upper().startswith("UPDATE")]


def test_requests_without_credentials_are_anonymous_and_cost_nothing(api: Api) -> None:
    with statements(api.app) as seen:
        assert api.client.get(ME).status_code == 401
    assert seen == []


def test_default_roles_come_from_the_enabled_plugins_grants(make_app: AppFactory) -> None:
    app = make_app(PLUGINS=["accounts"])
    upgrade(app)
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
    )
    assert made.exit_code == 0, made.output
    api = Api(app, app.test_client())
    api.create_user("ann@example.com")
    refused = runner.invoke(
        args=[
            "accounts",
            "create-api-key",
            "--email",
            "ann@example.com",
            "--name",
            "x",
            "--scope",
            "tasks:use",  # the tasks plugin is not enabled here: nobody grants it
        ]
    )
    assert refused.exit_code == 1
    assert "tasks:use" in refused.output
