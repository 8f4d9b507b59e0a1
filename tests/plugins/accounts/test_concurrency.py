"""Races on one refresh token, one email, one session, the last admins: SQLite and PostgreSQL.

Each round starts its requests at once behind a barrier, and is repeated: a check-then-write
gap shows up as more than one winner, a 500 or a broken invariant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from plugins.accounts.models import RefreshToken, RevokedAccessToken, User
from plugins.accounts.repository import AccountsRepository
from plugins.accounts.tokens import digest
from plugins.accounts.users import EMAIL_TAKEN, LAST_ADMIN
from tests.plugins.accounts.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    ROUNDS,
    THREADS,
    Api,
    race,
)

TOKENS = "/api/v1/accounts/tokens"
REFRESH = "/api/v1/accounts/tokens/refresh"
REGISTER = "/api/v1/accounts/register"
USERS = "/api/v1/accounts/users"
REUSED = "The refresh token was already used; its session is revoked."
PROBLEM = "application/problem+json"


def post(url: str, body: dict[str, Any], headers: dict[str, str], client: FlaskClient) -> Any:
    return client.post(url, json=body, headers=headers)


def delete(url: str, body: dict[str, Any], headers: dict[str, str], client: FlaskClient) -> Any:
    return client.delete(url, json=body, headers=headers)


def patch(url: str, body: dict[str, Any], headers: dict[str, str], client: FlaskClient) -> Any:
    return client.patch(url, json=body, headers=headers)


def count(api: Api, query: Any) -> int:
    with api.app.extensions["powerstrip.database"].sessions() as session:
        return int(session.scalar(query))


def details(answers: list[TestResponse], status: int) -> set[str]:
    refused = [answer for answer in answers if answer.status_code == status]
    assert all(answer.mimetype == PROBLEM for answer in refused)
    return {answer.get_json()["detail"] for answer in refused}


def test_concurrent_refreshes_of_one_token_issue_exactly_one_pair(race_api: Api) -> None:
    """The losers are treated as reuse (OAuth 2.0 Security BCP): 401, and the family dies."""
    for _ in range(ROUNDS):
        tokens = race_api.login()
        presented = tokens["refresh_token"]
        refresh = partial(post, REFRESH, {"refresh_token": presented}, {})
        answers: list[TestResponse] = race([refresh] * THREADS, race_api.app)

        assert sorted(answer.status_code for answer in answers) == [200] + [401] * (THREADS - 1)
        assert details(answers, 401) == {REUSED}
        family = select(RefreshToken.family).where(RefreshToken.token_hash == digest(presented))
        issued = select(func.count()).where(RefreshToken.family == family.scalar_subquery())
        assert count(race_api, issued) == 2  # the presented token and the one pair issued
        winner = next(answer.get_json() for answer in answers if answer.status_code == 200)
        again = race_api.client.post(REFRESH, json={"refresh_token": winner["refresh_token"]})
        assert again.status_code == 401  # the losers revoked the family, the new token too
        assert again.get_json()["detail"] == "The refresh token was revoked."
        live = select(func.count()).where(
            RefreshToken.family == family.scalar_subquery(), RefreshToken.revoked_at.is_(None)
        )
        assert count(race_api, live) == 0


@pytest.mark.parametrize("path", ["register", "admin"])
def test_concurrent_creations_of_one_email_are_one_201_and_409s(race_api: Api, path: str) -> None:
    """The service's check cannot see a create racing it; the unique index can: 409, not 500."""
    url, headers = (USERS, race_api.admin_headers()) if path == "admin" else (REGISTER, {})
    for round_ in range(ROUNDS):
        email = f"Race{round_}@Example.com"
        create = partial(post, url, {"email": email, "password": PASSWORD}, headers)
        answers: list[TestResponse] = race([create] * THREADS, race_api.app)

        assert sorted(answer.status_code for answer in answers) == [201] + [409] * (THREADS - 1)
        assert details(answers, 409) == {EMAIL_TAKEN}
        same = select(func.count()).where(User.email == email.lower())
        assert count(race_api, same) == 1
        assert race_api.login(email.lower(), PASSWORD)["access_token"]  # the account works


def test_concurrent_logouts_of_one_session_never_fail(race_api: Api) -> None:
    """Each is a 204, or a 401 for a request authenticated after another logout committed."""
    for _ in range(ROUNDS):
        tokens = race_api.login()
        headers = race_api.bearer(tokens["access_token"])
        logout = partial(delete, TOKENS, {"refresh_token": tokens["refresh_token"]}, headers)
        answers: list[TestResponse] = race([logout] * THREADS, race_api.app)

        statuses = {answer.status_code for answer in answers}
        assert 204 in statuses
        assert statuses <= {204, 401}, statuses
        assert details(answers, 401) <= {"The access token was revoked."}
        assert race_api.client.get(f"{USERS}/me", headers=headers).status_code == 401
        refreshed = race_api.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 401
    assert count(race_api, select(func.count()).select_from(RevokedAccessToken)) == ROUNDS


def test_recording_a_logged_out_token_twice_is_a_no_op(race_api: Api) -> None:
    database = race_api.app.extensions["powerstrip.database"]
    expires = datetime.now(UTC)
    with database.sessions() as session:
        repository = AccountsRepository(session)
        repository.revoke_access_token("the-jti", expires)
        repository.revoke_access_token("the-jti", expires)  # an IntegrityError before
        session.commit()
    assert count(race_api, select(func.count()).select_from(RevokedAccessToken)) == 1


def active_admins(api: Api) -> list[str]:
    with api.app.extensions["powerstrip.database"].sessions() as session:
        return list(session.scalars(select(User.email).where(User.role == "admin", User.is_active)))


def test_two_admins_demoting_each_other_at_once_leave_one(race_api: Api) -> None:
    survivor, password = ADMIN_EMAIL, ADMIN_PASSWORD
    for round_ in range(2 * ROUNDS):
        mine = race_api.bearer(race_api.login(survivor, password)["access_token"])
        my_id = race_api.client.get(f"{USERS}/me", headers=mine).get_json()["id"]
        other = f"admin{round_}@example.com"
        created = race_api.client.post(
            USERS, json={"email": other, "password": PASSWORD, "role": "admin"}, headers=mine
        )
        theirs = race_api.bearer(race_api.login(other, PASSWORD)["access_token"])
        demote: dict[str, Any] = {"role": "user"}
        deactivate: dict[str, Any] = {"is_active": False}
        changes = [demote, deactivate] if round_ % 2 else [deactivate, demote]
        answers: list[TestResponse] = race(
            [
                partial(patch, f"{USERS}/{created.get_json()['id']}", changes[0], mine),
                partial(patch, f"{USERS}/{my_id}", changes[1], theirs),
            ],
            race_api.app,
        )

        statuses = sorted(answer.status_code for answer in answers)
        assert statuses[0] == 200
        assert statuses[1] in {401, 403, 409}, statuses  # refused, or too late to authenticate
        assert details(answers, 409) <= {LAST_ADMIN}
        (survivor,) = active_admins(race_api)
        password = ADMIN_PASSWORD if survivor == ADMIN_EMAIL else PASSWORD


def test_a_ring_of_admins_demoting_each_other_never_leaves_none(race_api: Api) -> None:
    admins = 6
    headers = race_api.admin_headers()
    emails = [ADMIN_EMAIL] + [f"ring{i}@example.com" for i in range(1, admins)]
    ids = [race_api.client.get(f"{USERS}/me", headers=headers).get_json()["id"]]
    for email in emails[1:]:
        created = race_api.client.post(
            USERS, json={"email": email, "password": PASSWORD, "role": "admin"}, headers=headers
        )
        ids.append(created.get_json()["id"])
    bearers = [headers] + [
        race_api.bearer(race_api.login(email, PASSWORD)["access_token"]) for email in emails[1:]
    ]
    demotions = [
        partial(patch, f"{USERS}/{ids[(i + 1) % admins]}", {"role": "user"}, bearers[i])
        for i in range(admins)
    ]
    answers: list[TestResponse] = race(demotions, race_api.app)

    assert {answer.status_code for answer in answers} <= {200, 403, 409}
    assert len(active_admins(race_api)) >= 1
    assert details(answers, 409) <= {LAST_ADMIN}
