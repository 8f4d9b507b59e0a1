"""API keys: shown once, stored hashed, scoped, revocable, last use recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select

from plugins.accounts.api_keys import NOT_WITH_API_KEY
from plugins.accounts.models import ApiKey
from plugins.accounts.signing import development_key
from tests.plugins.accounts.conftest import PASSWORD, Api, AppBuilder, MovableClock, create_admin

KEYS = "/api/v1/accounts/api-keys"
ME = "/api/v1/accounts/users/me"


def create(api: Api, headers: dict[str, str], scopes: list[str]) -> dict[str, object]:
    response = api.client.post(KEYS, json={"name": "ci", "scopes": scopes}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_key_is_shown_once_and_stored_as_a_hash(api: Api) -> None:
    headers = api.admin_headers()
    created = create(api, headers, ["accounts:self"])
    key = str(created["key"])
    assert key.startswith(f"psk_{created['prefix']}_")
    listed = api.client.get(KEYS, headers=headers).get_json()
    assert [k["prefix"] for k in listed] == [created["prefix"]]
    assert "key" not in listed[0]
    database = api.app.extensions["powerstrip.database"]
    with database.sessions() as session:
        stored = session.scalar(select(ApiKey))
        assert stored is not None
        assert key.split("_", 2)[2] not in (stored.secret_hash, stored.prefix)
        assert len(stored.secret_hash) == 64


def test_key_authenticates_with_its_scopes_and_records_use(api: Api) -> None:
    created = create(api, api.admin_headers(), ["accounts:self"])
    headers = {"X-API-Key": str(created["key"])}
    assert api.client.get(ME, headers=headers).status_code == 200
    # the key holds only accounts:self even though its owner is an admin
    assert api.client.get("/api/v1/accounts/users", headers=headers).status_code == 403
    listed = api.client.get(KEYS, headers=api.admin_headers()).get_json()
    assert listed[0]["last_used_at"] is not None


def test_cannot_grant_scopes_one_does_not_hold(api: Api) -> None:
    api.create_user("kim@example.com")
    user = api.bearer(api.login("kim@example.com", PASSWORD)["access_token"])
    response = api.client.post(KEYS, json={"name": "x", "scopes": ["accounts:admin"]}, headers=user)
    assert response.status_code == 403


def test_revoked_key_is_refused(api: Api) -> None:
    headers = api.admin_headers()
    created = create(api, headers, ["accounts:self"])
    assert api.client.delete(f"{KEYS}/{created['id']}", headers=headers).status_code == 204
    response = api.client.get(ME, headers={"X-API-Key": str(created["key"])})
    assert response.status_code == 401
    assert response.get_json()["detail"] == "The API key is invalid or revoked."


def test_malformed_and_wrong_keys_are_refused(api: Api) -> None:
    created = create(api, api.admin_headers(), ["accounts:self"])
    prefix = created["prefix"]
    for value in ("garbage", f"psk_{prefix}_wrong-secret", "psk_nope_secret", "psk__x"):
        assert api.client.get(ME, headers={"X-API-Key": value}).status_code == 401


def test_others_keys_cannot_be_revoked(api: Api) -> None:
    created = create(api, api.admin_headers(), ["accounts:self"])
    api.create_user("lou@example.com")
    user = api.bearer(api.login("lou@example.com", PASSWORD)["access_token"])
    assert api.client.delete(f"{KEYS}/{created['id']}", headers=user).status_code == 404
    assert api.client.delete(f"{KEYS}/999", headers=user).status_code == 404


def test_key_of_a_deactivated_owner_is_refused(api: Api) -> None:
    user_id = api.create_user("max@example.com")
    user = api.bearer(api.login("max@example.com", PASSWORD)["access_token"])
    created = create(api, user, ["accounts:self"])
    api.client.patch(
        f"/api/v1/accounts/users/{user_id}", json={"is_active": False}, headers=api.admin_headers()
    )
    assert api.client.get(ME, headers={"X-API-Key": str(created["key"])}).status_code == 401


def test_an_api_key_cannot_create_api_keys(api: Api) -> None:
    created = create(api, api.admin_headers(), ["accounts:self"])
    response = api.client.post(
        KEYS, json={"name": "more"}, headers={"X-API-Key": str(created["key"])}
    )
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == NOT_WITH_API_KEY


@pytest.fixture
def timed_api(build_app: AppBuilder, database_url: str) -> Api:
    """An app whose clock the test moves (``clock.offset``)."""
    return create_admin(build_app(database_url))


def test_creating_a_key_needs_a_recent_password_login(timed_api: Api, clock: MovableClock) -> None:
    clock.offset = -timedelta(minutes=10)  # log in ten minutes ago (the token is still valid)
    old = timed_api.login()
    clock.offset = timedelta()
    stale = timed_api.client.post(
        KEYS, json={"name": "ci"}, headers=timed_api.bearer(old["access_token"])
    )
    assert stale.status_code == 403
    assert stale.get_json()["detail"] == (
        "Creating an API key needs a password login from the last 5 minute(s); this access "
        "token's login is older. Log in again and retry."
    )
    # a refresh keeps the login's time: it does not make the login recent
    refreshed = timed_api.client.post(
        "/api/v1/accounts/tokens/refresh", json={"refresh_token": old["refresh_token"]}
    ).get_json()
    claims = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
    assert (
        claims["auth_time"]
        == jwt.decode(old["access_token"], options={"verify_signature": False})["auth_time"]
    )
    assert claims["iat"] > claims["auth_time"]
    again = timed_api.client.post(
        KEYS, json={"name": "ci"}, headers=timed_api.bearer(refreshed["access_token"])
    )
    assert again.status_code == 403
    # a new password login is recent
    assert create(timed_api, timed_api.admin_headers(), [])["key"]


def test_the_fresh_login_window_is_a_setting(
    build_app: AppBuilder, database_url: str, clock: MovableClock
) -> None:
    api = create_admin(build_app(database_url, accounts={"API_KEY_FRESH_LOGIN_MINUTES": 30}))
    clock.offset = -timedelta(minutes=10)
    headers = api.admin_headers()
    clock.offset = timedelta()
    assert create(api, headers, [])["key"]


def test_a_token_without_auth_time_is_not_a_recent_login(api: Api) -> None:
    # tokens issued before auth_time was recorded (a family from before the migration)
    now = datetime.now(UTC)
    claims = {
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": "powerstrip",
        "aud": "powerstrip-api",
        "jti": "no-auth-time",
        "ver": 1,
    }
    key = development_key(Path(api.app.instance_path))
    token = jwt.encode(claims, key, algorithm="HS256", headers={"kid": "dev"})
    assert api.client.get(ME, headers=api.bearer(token)).status_code == 200
    refused = api.client.post(KEYS, json={"name": "ci"}, headers=api.bearer(token))
    assert refused.status_code == 403
    assert "password login" in refused.get_json()["detail"]


def change_password(api: Api, email: str, new: str) -> None:
    headers = api.bearer(api.login(email, PASSWORD)["access_token"])
    changed = api.client.put(
        f"{ME}/password", json={"current_password": PASSWORD, "password": new}, headers=headers
    )
    assert changed.status_code == 204


@pytest.mark.parametrize("revoke", [True, False])
def test_a_password_change_revokes_the_users_keys(
    build_app: AppBuilder, database_url: str, revoke: bool
) -> None:
    app = build_app(database_url, accounts={"REVOKE_API_KEYS_ON_PASSWORD_CHANGE": revoke})
    api = create_admin(app)
    api.create_user("pat@example.com")
    created = create(
        api, api.bearer(api.login("pat@example.com", PASSWORD)["access_token"]), ["accounts:self"]
    )
    key = {"X-API-Key": str(created["key"])}
    assert api.client.get(ME, headers=key).status_code == 200
    change_password(api, "pat@example.com", "another fine passphrase")
    assert api.client.get(ME, headers=key).status_code == (401 if revoke else 200)


@pytest.mark.parametrize("revoke", [True, False])
def test_deactivation_revokes_the_users_keys_for_good(
    build_app: AppBuilder, database_url: str, revoke: bool
) -> None:
    app = build_app(database_url, accounts={"REVOKE_API_KEYS_ON_DEACTIVATION": revoke})
    api = create_admin(app)
    user_id = api.create_user("quinn@example.com")
    created = create(
        api, api.bearer(api.login("quinn@example.com", PASSWORD)["access_token"]), ["accounts:self"]
    )
    key = {"X-API-Key": str(created["key"])}
    admin = api.admin_headers()
    api.client.patch(f"/api/v1/accounts/users/{user_id}", json={"is_active": False}, headers=admin)
    assert api.client.get(ME, headers=key).status_code == 401
    api.client.patch(f"/api/v1/accounts/users/{user_id}", json={"is_active": True}, headers=admin)
    assert api.client.get(ME, headers=key).status_code == (401 if revoke else 200)
    listed = api.client.get(
        KEYS, headers=api.bearer(api.login("quinn@example.com", PASSWORD)["access_token"])
    )
    assert (listed.get_json()[0]["revoked_at"] is not None) is revoke
