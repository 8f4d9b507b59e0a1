"""Fixtures for the accounts plugin: a migrated app, an admin, and HTTP helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
PASSWORD = "a perfectly fine passphrase"


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


@pytest.fixture
def api(migrated_app: Flask) -> Api:
    result = migrated_app.test_cli_runner().invoke(
        args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
    )
    assert result.exit_code == 0, result.output
    return Api(migrated_app, migrated_app.test_client())
