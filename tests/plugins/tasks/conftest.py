"""Fixtures for the tasks plugin: a migrated app with an owner and two more users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.plugins.accounts.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD

PROJECTS = "/api/v1/tasks/projects"


@dataclass
class Caller:
    """One principal talking to the tasks API."""

    client: FlaskClient
    token: str
    user_id: str
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **self.extra, **more}

    def get(self, path: str, **headers: str) -> TestResponse:
        return self.client.get(path, headers=self.headers(**headers))

    def post(self, path: str, body: dict[str, Any], **headers: str) -> TestResponse:
        return self.client.post(path, json=body, headers=self.headers(**headers))

    def patch(self, path: str, body: dict[str, Any], **headers: str) -> TestResponse:
        return self.client.patch(path, json=body, headers=self.headers(**headers))

    def put(self, path: str, body: dict[str, Any], **headers: str) -> TestResponse:
        return self.client.put(path, json=body, headers=self.headers(**headers))

    def delete(self, path: str, **headers: str) -> TestResponse:
        return self.client.delete(path, headers=self.headers(**headers))

    def project(self, name: str = "Launch") -> int:
        response = self.post(PROJECTS, {"name": name})
        assert response.status_code == 201, response.get_json()
        return int(response.get_json()["id"])

    def task(self, project_id: int, **fields: Any) -> dict[str, Any]:
        response = self.post(f"{PROJECTS}/{project_id}/tasks", {"title": "A task", **fields})
        assert response.status_code == 201, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]


@dataclass
class People:
    owner: Caller
    alice: Caller
    bob: Caller


def _login(app: Flask, email: str, password: str) -> Caller:
    client = app.test_client()
    response = client.post("/api/v1/accounts/tokens", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["access_token"]
    me = client.get("/api/v1/accounts/users/me", headers={"Authorization": f"Bearer {token}"})
    return Caller(client, token, str(me.get_json()["id"]))


def make_people(app: Flask) -> People:
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
    )
    assert created.exit_code == 0, created.output
    owner = _login(app, ADMIN_EMAIL, ADMIN_PASSWORD)
    for name in ("alice", "bob"):
        response = owner.post(
            "/api/v1/accounts/users", {"email": f"{name}@example.com", "password": PASSWORD}
        )
        assert response.status_code == 201, response.get_json()
    return People(
        owner,
        _login(app, "alice@example.com", PASSWORD),
        _login(app, "bob@example.com", PASSWORD),
    )


@pytest.fixture
def people(migrated_app: Flask) -> People:
    return make_people(migrated_app)
