"""Login, refresh rotation, reuse detection, logout, and every way a token is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest

from plugins.accounts import tokens as tokens_module
from plugins.accounts.settings import AccountsSettings
from plugins.accounts.signing import SigningKeys, development_key
from plugins.accounts.tokens import AccessTokens, TokenError
from powerstrip import Clock
from powerstrip.cli import INJECTOR
from tests.plugins.accounts.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Api

ME = "/api/v1/accounts/users/me"


def key_of(api: Api) -> str:
    """The signing key the app generated in its instance folder (testing has no SIGNING_KEYS)."""
    return development_key(Path(api.app.instance_path))


def claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    base: dict[str, object] = {
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": "powerstrip",
        "aud": "powerstrip-api",
        "jti": "test-jti",
        "ver": 1,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def forge(
    payload: dict[str, object], *, key: str, kid: str = "dev", algorithm: str = "HS256"
) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def refused(api: Api, token: str) -> str:
    response = api.client.get(ME, headers=api.bearer(token))
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return str(response.get_json()["detail"])


def test_login_returns_tokens_that_work(api: Api) -> None:
    tokens = api.login()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 15 * 60
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header == {"alg": "HS256", "kid": "dev", "typ": "JWT"}
    payload = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert set(payload) >= {"exp", "iat", "nbf", "iss", "aud", "sub", "jti", "auth_time"}
    assert payload["auth_time"] == payload["iat"]  # a password login: logged in just now
    me = api.client.get(ME, headers=api.bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["email"] == ADMIN_EMAIL


def test_email_is_case_insensitive_at_login(api: Api) -> None:
    assert api.login(email="  ADMIN@Example.COM ")["access_token"]


def test_unknown_user_and_wrong_password_look_the_same(api: Api) -> None:
    wrong = api.client.post(
        "/api/v1/accounts/tokens", json={"email": ADMIN_EMAIL, "password": "nope"}
    )
    unknown = api.client.post(
        "/api/v1/accounts/tokens", json={"email": "ghost@example.com", "password": "nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.get_json()["detail"] == unknown.get_json()["detail"] == "Invalid email or password."
    )


def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    first = api.login()
    second = api.client.post(
        "/api/v1/accounts/tokens/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    rotated = second.get_json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert api.client.get(ME, headers=api.bearer(rotated["access_token"])).status_code == 200

    reuse = api.client.post(
        "/api/v1/accounts/tokens/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reuse.status_code == 401
    assert "already used" in reuse.get_json()["detail"]
    # the whole family is dead now, including the token the legitimate client holds
    family = api.client.post(
        "/api/v1/accounts/tokens/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert family.status_code == 401
    # another login (another family) is unaffected
    assert api.login()["refresh_token"]


def test_unknown_refresh_token(api: Api) -> None:
    response = api.client.post("/api/v1/accounts/tokens/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401


def test_logout_revokes_access_token_and_refresh_family(api: Api) -> None:
    tokens = api.login()
    out = api.client.delete(
        "/api/v1/accounts/tokens",
        json={"refresh_token": tokens["refresh_token"]},
        headers=api.bearer(tokens["access_token"]),
    )
    assert out.status_code == 204
    assert refused(api, tokens["access_token"]) == "The access token was revoked."
    again = api.client.post(
        "/api/v1/accounts/tokens/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401


def test_logout_requires_authentication(api: Api) -> None:
    assert api.client.delete("/api/v1/accounts/tokens", json={}).status_code == 401


def test_deactivation_and_password_change_kill_tokens(api: Api) -> None:
    user_id = api.create_user("carol@example.com")
    tokens = api.login("carol@example.com", PASSWORD)
    changed = api.client.put(
        "/api/v1/accounts/users/me/password",
        json={"current_password": PASSWORD, "password": "another fine passphrase"},
        headers=api.bearer(tokens["access_token"]),
    )
    assert changed.status_code == 204
    assert refused(api, tokens["access_token"]) == "The access token was revoked."
    stale = api.client.post(
        "/api/v1/accounts/tokens/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert stale.status_code == 401

    fresh = api.login("carol@example.com", "another fine passphrase")
    deactivated = api.client.patch(
        f"/api/v1/accounts/users/{user_id}", json={"is_active": False}, headers=api.admin_headers()
    )
    assert deactivated.status_code == 200
    assert deactivated.get_json()["is_active"] is False
    assert refused(api, fresh["access_token"]) == "The access token was revoked."
    login = api.client.post(
        "/api/v1/accounts/tokens",
        json={"email": "carol@example.com", "password": "another fine passphrase"},
    )
    assert login.status_code == 401


def test_wrong_current_password_is_refused(api: Api) -> None:
    tokens = api.login()
    response = api.client.put(
        "/api/v1/accounts/users/me/password",
        json={"current_password": "not it", "password": "another fine passphrase"},
        headers=api.bearer(tokens["access_token"]),
    )
    assert response.status_code == 422
    assert "current_password" in response.get_json()["errors"]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda _: _b64({"alg": "none", "kid": "dev"}) + "." + _b64({"sub": "1"}) + ".", "invalid"),
        (lambda k: forge(claims(), algorithm="HS512", key=k), "invalid"),
        (lambda k: forge(claims(exp=datetime.now(UTC) - timedelta(seconds=5)), key=k), "expired"),
        (
            lambda k: forge(claims(nbf=datetime.now(UTC) + timedelta(minutes=5)), key=k),
            "not valid yet",
        ),
        (lambda k: forge(claims(aud="another-api"), key=k), "not meant for this API"),
        (lambda k: forge(claims(iss="someone-else"), key=k), "not meant for this API"),
        (lambda _: forge(claims(), key="x" * 64), "invalid"),
        (lambda k: forge(claims(), kid="retired", key=k), "unknown key"),
        (lambda k: forge(claims(jti=None), key=k), "invalid"),
        (lambda k: forge(claims(ver="1"), key=k), "invalid"),
        (lambda k: forge(claims(auth_time="yesterday"), key=k), "invalid"),
        (lambda k: forge(claims(sub="999"), key=k), "revoked"),
        (lambda _: "not-a-jwt", "malformed"),
    ],
    ids=[
        "alg-none",
        "algorithm-confusion",
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "tampered-signature",
        "unknown-kid",
        "missing-jti",
        "bad-version",
        "bad-auth-time",
        "unknown-subject",
        "malformed",
    ],
)
def test_bad_access_tokens_are_401(api: Api, make_token: Callable[[str], str], reason: str) -> None:
    assert reason in refused(api, make_token(key_of(api)))


def test_tampered_payload_is_refused(api: Api) -> None:
    header, payload, signature = api.login()["access_token"].split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["sub"] = "2"
    assert "invalid" in refused(api, f"{header}.{_b64(data)}.{signature}")


def test_forged_token_with_the_right_key_is_accepted(api: Api) -> None:
    # the control for the negative tests above: same helper, valid claims, accepted
    response = api.client.get(ME, headers=api.bearer(forge(claims(), key=key_of(api))))
    assert response.status_code == 200


def test_keys_rotate_with_fallback(make_app, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import upgrade  # noqa: PLC0415

    old, new = "o" * 20 + "ld-key-0123456789abcd", "n" * 20 + "ew-key-0123456789abcd"
    app = make_app(accounts={"SIGNING_KEYS": {"old": old, "new": new}, "CURRENT_KEY": "new"})
    upgrade(app)
    runner = app.test_cli_runner()
    assert (
        runner.invoke(
            args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
        ).exit_code
        == 0
    )
    rotated = Api(app, app.test_client())
    assert jwt.get_unverified_header(rotated.login()["access_token"])["kid"] == "new"
    assert (
        rotated.client.get(
            ME, headers=rotated.bearer(forge(claims(), key=old, kid="old"))
        ).status_code
        == 200
    )
    assert "unknown key" in refused(rotated, forge(claims(), key="d" * 40, kid="dev"))


def test_wrong_authorization_scheme(api: Api) -> None:
    response = api.client.get(ME, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert response.status_code == 401
    assert "Bearer" in response.get_json()["detail"]


def test_token_answers_are_never_cached(api: Api) -> None:
    login = api.client.post(
        "/api/v1/accounts/tokens", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    refreshed = api.client.post(
        "/api/v1/accounts/tokens/refresh",
        json={"refresh_token": login.get_json()["refresh_token"]},
    )
    for response in (login, refreshed):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"
    spec = api.client.get("/api/openapi.json").get_json()["paths"]["/api/v1/accounts/tokens"]
    assert set(spec["post"]["responses"]["200"]["headers"]) == {"Cache-Control", "Pragma"}
    created = api.client.post(
        "/api/v1/accounts/api-keys", json={"name": "ci"}, headers=api.admin_headers()
    )
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"  # the key is shown only now


def test_a_verified_token_is_remembered_until_it_expires(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    monkeypatch.setattr(tokens_module, "VERIFIED_TOKENS", 2)
    injector = api.app.extensions[INJECTOR]
    access = AccessTokens(injector.get(AccountsSettings), Clock(), injector.get(SigningKeys))
    key = key_of(api)
    first, second, third = (forge(claims(jti=f"jti-{n}"), key=key) for n in range(3))

    assert access.verify(first).jti == "jti-0"
    assert access.verify(first).jti == "jti-0"  # remembered: no second decode
    assert decoded == [first]
    access.verify(second)
    access.verify(third)  # the least recently used, the first, is forgotten
    assert access.verify(first).jti == "jti-0"
    assert decoded == [first, second, third, first]

    with pytest.raises(TokenError, match="not meant for this API"):
        access.verify(forge(claims(aud="another-api"), key=key))
    expires = jwt.decode(first, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(tokens_module, "time", SimpleNamespace(time=lambda: expires))
    with pytest.raises(TokenError, match="has expired"):  # remembered, yet refused at its exp
        access.verify(first)
    monkeypatch.setattr(tokens_module, "time", SimpleNamespace(time=lambda: expires - 1))
    assert access.verify(first).jti == "jti-0"
