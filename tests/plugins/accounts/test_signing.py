"""The development signing key: random, generated once per instance folder, never in the source."""

from __future__ import annotations

import hashlib
import hmac
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from app import PluginError, create_app
from plugins.accounts.settings import AccountsSettingsSchema
from plugins.accounts.signing import (
    DEVELOPMENT_KEY_FILE,
    SigningKeyError,
    SigningKeys,
    development_key,
)
from tests.conftest import AppFactory, upgrade
from tests.plugins.accounts.conftest import Api, create_admin

ME = "/api/v1/accounts/users/me"


def admin_token(key: str) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": "powerstrip",
        "aud": "powerstrip-api",
        "jti": "forged",
        "ver": 1,
    }
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": "dev"})


def test_the_key_is_created_once_private_and_random(tmp_path: Path) -> None:
    key = development_key(tmp_path / "instance")
    path = tmp_path / "instance" / DEVELOPMENT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert development_key(tmp_path / "instance") == key  # read, not made again
    assert development_key(tmp_path / "other") != key
    assert sorted(p.name for p in (tmp_path / "instance").iterdir()) == [DEVELOPMENT_KEY_FILE]


def test_workers_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    workers = 16
    start = threading.Barrier(workers)
    keys: list[str] = []

    def start_worker() -> None:
        start.wait(10)
        keys.append(development_key(tmp_path))

    threads = [threading.Thread(target=start_worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(keys) == workers
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [DEVELOPMENT_KEY_FILE]  # no drafts left


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / DEVELOPMENT_KEY_FILE).write_text("short\n")
    with pytest.raises(SigningKeyError, match="shorter than 32 characters; delete it"):
        development_key(tmp_path)


def test_an_unwritable_folder_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SigningKeyError, match="cannot create the development signing key"):
        development_key(blocker / "instance")


def test_configured_keys_never_touch_the_instance_folder(tmp_path: Path) -> None:
    settings = AccountsSettingsSchema().load({"SIGNING_KEYS": {"k1": "k" * 40}})
    keys = SigningKeys(settings, tmp_path)
    assert keys.current() == ("k1", "k" * 40)
    assert keys.get("dev") is None
    assert list(tmp_path.iterdir()) == []


def test_the_app_signs_with_its_instance_key_from_startup(api: Api) -> None:
    key_file = Path(api.app.instance_path) / DEVELOPMENT_KEY_FILE
    assert key_file.exists()  # made at startup, before any token
    token = api.login()["access_token"]
    key = key_file.read_text().strip()
    assert jwt.decode(token, key, algorithms=["HS256"], audience="powerstrip-api")["sub"] == "1"
    assert api.client.get(ME, headers=api.bearer(admin_token(key))).status_code == 200


def test_the_old_source_derived_key_forges_nothing(api: Api) -> None:
    # What every development setup signed with before: anyone could compute it.
    constant = hmac.new(
        b"powerstrip-accounts", b"development-signing-key", hashlib.sha256
    ).hexdigest()
    response = api.client.get(ME, headers=api.bearer(admin_token(constant)))
    assert response.status_code == 401
    assert response.get_json()["detail"] == "The access token is invalid."


def test_the_key_survives_a_restart_and_differs_per_instance(
    make_app: AppFactory, tmp_path: Path
) -> None:
    first = make_app()
    upgrade(first)
    token = create_admin(first).login()["access_token"]
    again = make_app()  # the same instance folder: a restart
    assert (
        again.test_client().get(ME, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    elsewhere = tmp_path / "elsewhere"
    other = make_app(INSTANCE_PATH=str(elsewhere), DATABASE_URL=f"sqlite:///{elsewhere}/x.db")
    upgrade(other)
    refused = other.test_client().get(ME, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401


def test_production_still_refuses_to_start_without_keys(instance_path: Path) -> None:
    strong = "k3Y-" + "abcdefghijklmnopqrstuvwxyz0123456789"
    with pytest.raises(PluginError, match=r"SIGNING_KEYS .*required"):
        create_app(
            {"ENVIRONMENT": "production", "SECRET_KEY": strong, "INSTANCE_PATH": str(instance_path)}
        )
    assert not (instance_path / DEVELOPMENT_KEY_FILE).exists()


def test_current_key_without_signing_keys_is_refused() -> None:
    from marshmallow import ValidationError  # noqa: PLC0415

    from powerstrip.plugin import _SETTINGS_ENVIRONMENT  # noqa: PLC0415

    token = _SETTINGS_ENVIRONMENT.set("development")
    try:
        with pytest.raises(ValidationError, match="must name one of SIGNING_KEYS"):
            AccountsSettingsSchema().load({"CURRENT_KEY": "dev"})
        assert AccountsSettingsSchema().load({}).SIGNING_KEYS == {}
    finally:
        _SETTINGS_ENVIRONMENT.reset(token)
