"""API keys: shown once, stored hashed, scoped, revocable, last use recorded."""

from __future__ import annotations

from sqlalchemy import select

from plugins.accounts.models import ApiKey
from tests.plugins.accounts.conftest import PASSWORD, Api

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
