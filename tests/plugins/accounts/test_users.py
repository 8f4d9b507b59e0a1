"""Users through HTTP: admin CRUD, self-service, registration, 401 versus 403."""

from __future__ import annotations

import json

import pytest

from plugins.accounts.users import LAST_ADMIN
from tests.conftest import AppFactory, upgrade
from tests.plugins.accounts.conftest import ADMIN_EMAIL, PASSWORD, Api

USERS = "/api/v1/accounts/users"


def test_admin_creates_and_reads_users(api: Api) -> None:
    user_id = api.create_user("  Dora@Example.com ")
    response = api.client.get(f"{USERS}/{user_id}", headers=api.admin_headers())
    body = response.get_json()
    assert body["email"] == "dora@example.com"  # normalised
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert "password" not in json.dumps(body)


def test_emails_are_unique_case_insensitively(api: Api) -> None:
    api.create_user("eve@example.com")
    again = api.client.post(
        USERS, json={"email": "EVE@example.com", "password": PASSWORD}, headers=api.admin_headers()
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "Use at least 10 characters."),
        ("password123", "This password is too common."),
        ("QwErTyUiOp", "This password is too common."),
        ("frank-is-my-secret", "Do not use your email address in your password."),
    ],
)
def test_password_policy(api: Api, password: str, message: str) -> None:
    response = api.client.post(
        USERS,
        json={"email": "frank@example.com", "password": password},
        headers=api.admin_headers(),
    )
    assert response.status_code == 422
    assert message in response.get_json()["errors"]["password"]


def test_unknown_role_and_bad_email_are_422(api: Api) -> None:
    headers = api.admin_headers()
    role = api.client.post(
        USERS, json={"email": "g@example.com", "password": PASSWORD, "role": "god"}, headers=headers
    )
    assert role.status_code == 422
    email = api.client.post(
        USERS, json={"email": "not-an-email", "password": PASSWORD}, headers=headers
    )
    assert email.status_code == 422
    assert "email" in email.get_json()["errors"]


def test_list_filters_and_paginates(api: Api) -> None:
    for name in ("amy", "ben", "cat"):
        api.create_user(f"{name}@example.org")
    headers = api.admin_headers()
    bob_id = api.create_user("bob@example.org")
    api.client.patch(f"{USERS}/{bob_id}", json={"is_active": False}, headers=headers)
    page = api.client.get(f"{USERS}?page=1&page_size=2", headers=headers)
    assert page.status_code == 200
    assert len(page.get_json()) == 2
    assert json.loads(page.headers["X-Pagination"])["total"] == 5
    by_email = api.client.get(f"{USERS}?email=example.org", headers=headers).get_json()
    assert sorted(u["email"] for u in by_email) == [
        "amy@example.org",
        "ben@example.org",
        "bob@example.org",
        "cat@example.org",
    ]
    inactive = api.client.get(f"{USERS}?active=false", headers=headers).get_json()
    assert [u["email"] for u in inactive] == ["bob@example.org"]
    admins = api.client.get(f"{USERS}?role=admin", headers=headers).get_json()
    assert [u["email"] for u in admins] == [ADMIN_EMAIL]


def test_reactivation(api: Api) -> None:
    user_id = api.create_user("hal@example.com")
    headers = api.admin_headers()
    api.client.patch(f"{USERS}/{user_id}", json={"is_active": False}, headers=headers)
    back = api.client.patch(
        f"{USERS}/{user_id}", json={"is_active": True, "role": "admin"}, headers=headers
    )
    assert back.get_json()["is_active"] is True
    assert back.get_json()["role"] == "admin"
    assert api.login("hal@example.com", PASSWORD)["access_token"]


def test_anonymous_is_401_and_non_admin_is_403(api: Api) -> None:
    assert api.client.get(USERS).status_code == 401
    api.create_user("ivan@example.com")
    user = api.bearer(api.login("ivan@example.com", PASSWORD)["access_token"])
    forbidden = api.client.get(USERS, headers=user)
    assert forbidden.status_code == 403
    assert forbidden.get_json()["detail"] == "This requires the scope(s): accounts:admin."
    assert api.client.get(f"{USERS}/me", headers=user).get_json()["email"] == "ivan@example.com"


def test_missing_user_is_404(api: Api) -> None:
    headers = api.admin_headers()
    assert api.client.get(f"{USERS}/999", headers=headers).status_code == 404
    assert (
        api.client.patch(f"{USERS}/999", json={"role": "admin"}, headers=headers).status_code == 404
    )
    bad_role = api.client.patch(f"{USERS}/1", json={"role": "god"}, headers=headers)
    assert bad_role.status_code == 422


def test_registration_is_closed_by_default(api: Api) -> None:
    response = api.client.post(
        "/api/v1/accounts/register", json={"email": "jo@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403


def test_registration_when_open(make_app: AppFactory) -> None:
    app = make_app(accounts={"REGISTRATION_OPEN": True})
    upgrade(app)
    client = app.test_client()
    response = client.post(
        "/api/v1/accounts/register", json={"email": "jo@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.get_json()["role"] == "user"
    login = client.post(
        "/api/v1/accounts/tokens", json={"email": "jo@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(api: Api) -> None:
    headers = api.admin_headers()
    me = api.client.get(f"{USERS}/me", headers=headers).get_json()["id"]
    for change in ({"role": "user"}, {"is_active": False}, {"role": "user", "is_active": False}):
        refused = api.client.patch(f"{USERS}/{me}", json=change, headers=headers)
        assert refused.status_code == 409
        assert refused.mimetype == "application/problem+json"
        assert refused.get_json()["detail"] == LAST_ADMIN
    unchanged = api.client.get(f"{USERS}/{me}", headers=headers).get_json()
    assert (unchanged["role"], unchanged["is_active"]) == ("admin", True)
    # A change that keeps it an active admin is fine
    same = api.client.patch(f"{USERS}/{me}", json={"role": "admin"}, headers=headers)
    assert same.status_code == 200


def test_an_admin_can_be_demoted_while_another_remains(api: Api) -> None:
    headers = api.admin_headers()
    other = api.create_user("second@example.com", role="admin")
    inactive = api.create_user("inactive@example.com", role="admin")
    api.client.patch(f"{USERS}/{inactive}", json={"is_active": False}, headers=headers)
    demoted = api.client.patch(f"{USERS}/{other}", json={"role": "user"}, headers=headers)
    assert demoted.status_code == 200
    # an inactive admin does not count: the one left is the last
    me = api.client.get(f"{USERS}/me", headers=headers).get_json()["id"]
    last = api.client.patch(f"{USERS}/{me}", json={"is_active": False}, headers=headers)
    assert last.status_code == 409
    # an inactive admin itself can still be demoted (it is no active admin)
    assert (
        api.client.patch(f"{USERS}/{inactive}", json={"role": "user"}, headers=headers).status_code
        == 200
    )


def test_update_problems_are_documented(api: Api) -> None:
    spec = api.client.get("/api/openapi.json").get_json()
    responses = spec["paths"]["/api/v1/accounts/users/{user_id}"]["patch"]["responses"]
    assert {"404", "409"} <= set(responses)
