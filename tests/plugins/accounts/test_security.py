"""Brute force, password hashing, settings, OpenAPI security, and the contract other plugins use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app import PluginError, create_app
from app.plugins_cli import plugins
from plugins.accounts.models import User
from plugins.accounts.passwords import Passwords
from plugins.accounts.settings import AccountsSettingsSchema
from plugins.accounts.signing import SigningKeys
from plugins.accounts.tokens import (
    AccessTokens,
    TokenError,
    digest,
    new_api_key,
    same_digest,
    split_api_key,
)
from tests.conftest import AppFactory, upgrade
from tests.plugin_fixtures import Installer, plugin_source
from tests.plugins.accounts.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api

LOGIN = "/api/v1/accounts/tokens"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_failed_logins_per_account_slow_down_known_and_unknown_alike(api: Api) -> None:
    for email in (ADMIN_EMAIL, "ghost@example.com"):
        statuses = [
            api.client.post(LOGIN, json={"email": email, "password": "wrong"}).status_code
            for _ in range(7)
        ]
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429, 429]
    blocked = api.client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert blocked.status_code == 429  # even the right password waits now
    assert int(blocked.headers["Retry-After"]) > 0


def test_a_success_resets_the_failure_count(api: Api) -> None:
    for _ in range(4):
        api.client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": "wrong"})
    api.login()
    statuses = [
        api.client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": "wrong"}).status_code
        for _ in range(5)
    ]
    assert statuses == [401] * 5


def test_logins_are_limited_per_client_address(make_app: AppFactory) -> None:
    app = make_app(accounts={"LOGIN_LIMIT_PER_ADDRESS": "3 per minute"})
    upgrade(app)
    client = app.test_client()
    statuses = [
        client.post(LOGIN, json={"email": f"u{i}@example.com", "password": "x"}).status_code
        for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    other = client.post(
        LOGIN,
        json={"email": "u9@example.com", "password": "x"},
        environ_base={"REMOTE_ADDR": "10.9.9.9"},
    )
    assert other.status_code == 401


def test_login_rehashes_when_parameters_change(api: Api) -> None:
    database = api.app.extensions["powerstrip.database"]
    with database.sessions.begin() as session:
        user = session.scalar(select(User).where(User.email == ADMIN_EMAIL))
        assert user is not None
        user.password_hash = FAST.hash(ADMIN_PASSWORD)  # made with weaker, older parameters
    api.login()
    with database.sessions() as session:
        stored = session.scalar(select(User.password_hash).where(User.email == ADMIN_EMAIL))
    assert stored is not None
    assert not PasswordHasher().check_needs_rehash(stored)


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=64))
def test_password_hashing_properties(password: str, other: str) -> None:
    passwords = Passwords(FAST)
    stored = passwords.hash(password)
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, password)
    assert passwords.verify(stored, other) == (other == password)
    assert not passwords.verify(None, password)  # unknown user: never true


@settings(max_examples=50, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(
    st.integers(min_value=1, max_value=2**31), st.integers(min_value=1, max_value=1000), st.data()
)
def test_tokens_round_trip_and_any_change_is_refused(
    user_id: int, version: int, data: st.DataObject
) -> None:
    from powerstrip import Clock  # noqa: PLC0415

    settings_ = AccountsSettingsSchema().load({"SIGNING_KEYS": {"k": "s" * 40}})
    tokens = AccessTokens(settings_, Clock(), SigningKeys(settings_, Path("/nonexistent")))
    token, claims = tokens.issue(user_id, version)
    verified = tokens.verify(token)
    assert (verified.subject, verified.version, verified.jti) == (str(user_id), version, claims.jti)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    )
    tampered = token[:position] + replacement + token[position + 1 :]
    if tampered != token:
        try:
            changed = tokens.verify(tampered)
        except TokenError:
            return
        # base64 padding bits can change without changing the bytes: then nothing changed
        assert changed == verified


@given(st.text(max_size=80))
def test_api_key_parsing_never_crashes(value: str) -> None:
    parts = split_api_key(value)
    assert parts is None or value == f"psk_{parts[0]}_{parts[1]}"


def test_api_key_secret_round_trip() -> None:
    value, prefix, secret = new_api_key()
    assert split_api_key(value) == (prefix, secret)
    assert same_digest(secret, digest(secret))
    assert not same_digest(secret + "x", digest(secret))


def test_signing_keys_are_required_in_production(instance_path: Path) -> None:
    strong = "k3Y-" + "abcdefghijklmnopqrstuvwxyz0123456789"
    with pytest.raises(
        PluginError, match=r"^plugin 'accounts': invalid settings: SIGNING_KEYS .*required"
    ):
        create_app(
            {"ENVIRONMENT": "production", "SECRET_KEY": strong, "INSTANCE_PATH": str(instance_path)}
        )
    with pytest.raises(PluginError, match=r"CURRENT_KEY .*must name one of SIGNING_KEYS"):
        create_app(
            {
                "ENVIRONMENT": "production",
                "SECRET_KEY": strong,
                "INSTANCE_PATH": str(instance_path),
                "accounts": {"SIGNING_KEYS": {"a": "x" * 40}, "CURRENT_KEY": "b"},
            }
        )
    with pytest.raises(PluginError, match=r"SIGNING_KEYS"):
        create_app(
            {
                "ENVIRONMENT": "production",
                "SECRET_KEY": strong,
                "INSTANCE_PATH": str(instance_path),
                "accounts": {"SIGNING_KEYS": {"a": "too-short"}},
            }
        )


def test_signing_keys_are_redacted(instance_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERSTRIP_ENVIRONMENT", "testing")
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(instance_path))
    monkeypatch.setenv("POWERSTRIP_ACCOUNTS__SIGNING_KEYS", json.dumps({"k1": "v3ry-s3cret-" * 4}))
    result = CliRunner().invoke(plugins, ["config", "accounts"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["SIGNING_KEYS"] == "**redacted**"
    assert "v3ry-s3cret" not in result.output
    settings_ = AccountsSettingsSchema().load({"SIGNING_KEYS": {"k1": "v3ry-s3cret-" * 4}})
    assert "v3ry" not in repr(settings_)


def test_openapi_documents_security(api: Api) -> None:
    spec = api.client.get("/api/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    description = schemes["bearerAuth"].pop("description")
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["apiKeyAuth"]["in"] == "header"
    # Every scope the enabled plugins declare is described, in both schemes.
    for scope in ("accounts:admin", "accounts:self", "tasks:use"):
        assert f"- `{scope}`: " in description
        assert f"- `{scope}`: " in schemes["apiKeyAuth"]["description"]
    listing = spec["paths"]["/api/v1/accounts/users"]["get"]
    assert {"bearerAuth": ["accounts:admin"]} in listing["security"]
    assert listing["responses"]["401"] == {"$ref": "#/components/responses/UNAUTHORIZED"}
    assert listing["responses"]["403"] == {"$ref": "#/components/responses/FORBIDDEN"}
    assert "security" not in spec["paths"]["/api/v1/accounts/tokens"]["post"]
    from openapi_spec_validator import validate  # noqa: PLC0415

    validate(spec)


OTHER_PLUGIN = """
from powerstrip import Principal, requires

@blp.route("/secret")
@blp.response(200)
@requires("reports:read")
def secret():
    return {{"ok": True}}

@blp.route("/whoami")
@blp.response(200)
def whoami(principal: Principal):
    return {{"kind": principal.kind, "subject": principal.subject}}
"""


def test_other_plugins_use_the_principal_without_importing_accounts(
    installer: Installer, make_app: AppFactory
) -> None:
    installer.install("reports", plugin_source("reports", OTHER_PLUGIN))
    app = make_app(
        accounts={
            "ROLE_SCOPES": {"admin": ["*"], "user": ["accounts:self"], "analyst": ["reports:read"]}
        }
    )
    upgrade(app)
    assert (
        app.test_cli_runner()
        .invoke(
            args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
        )
        .exit_code
        == 0
    )
    api = Api(app, app.test_client())
    assert api.client.get("/api/v1/reports/secret").status_code == 401
    assert api.client.get("/api/v1/reports/whoami").get_json() == {
        "kind": "anonymous",
        "subject": None,
    }
    api.create_user("ann@example.com", role="user")
    api.create_user("ana@example.com", role="analyst")
    user = api.bearer(api.login("ann@example.com", "a perfectly fine passphrase")["access_token"])
    analyst = api.bearer(
        api.login("ana@example.com", "a perfectly fine passphrase")["access_token"]
    )
    assert api.client.get("/api/v1/reports/secret", headers=user).status_code == 403
    assert api.client.get("/api/v1/reports/secret", headers=analyst).get_json() == {"ok": True}
    assert api.client.get("/api/v1/reports/whoami", headers=analyst).get_json()["kind"] == "user"
