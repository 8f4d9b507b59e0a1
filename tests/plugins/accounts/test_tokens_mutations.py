"""Access tokens, secrets, API keys and the development signing key as units, without an app:
every claim, every refusal and its message (``make mutation`` runs these against every mutant of
tokens.py and signing.py)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest

from plugins.accounts.settings import AccountsSettings, AccountsSettingsSchema
from plugins.accounts.signing import (
    DEVELOPMENT_KEY_FILE,
    SigningKeyError,
    SigningKeys,
    development_key,
)
from plugins.accounts.tokens import (
    ALGORITHM,
    API_KEY_PREFIX,
    REQUIRED_CLAIMS,
    AccessClaims,
    AccessTokens,
    TokenError,
    digest,
    new_api_key,
    new_secret,
    same_digest,
    split_api_key,
)
from powerstrip import Clock

OLD_KEY = "o" * 40
NEW_KEY = "n" * 40
ZONE = timezone(timedelta(hours=2))  # not UTC: the claims' times take the clock's zone


class FixedClock(Clock):
    def __init__(self, now: datetime) -> None:
        self.fixed = now

    def now(self) -> datetime:
        return self.fixed


def settings(**overrides: object) -> AccountsSettings:
    values: dict[str, object] = {
        "SIGNING_KEYS": {"old": OLD_KEY, "new": NEW_KEY},
        "CURRENT_KEY": "new",
        "ACCESS_TOKEN_MINUTES": 7,
        "ISSUER": "issuer-x",
        "AUDIENCE": "audience-y",
    }
    loaded: AccountsSettings = AccountsSettingsSchema().load({**values, **overrides})
    return loaded


@pytest.fixture
def now() -> datetime:
    return datetime.now(ZONE).replace(microsecond=0)


@pytest.fixture
def tokens(now: datetime, tmp_path: Path) -> AccessTokens:
    config = settings()
    return AccessTokens(config, FixedClock(now), SigningKeys(config, tmp_path))


def valid_claims(now: datetime, **overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "42",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": "issuer-x",
        "aud": "audience-y",
        "jti": "the-jti",
        "ver": 3,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def sign(claims: dict[str, object], key: str = NEW_KEY, kid: str = "new") -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": kid})


def refusal(tokens: AccessTokens, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        tokens.verify(token)
    return str(caught.value)


def test_the_algorithm_and_the_required_claims() -> None:
    assert ALGORITHM == "HS256"
    assert REQUIRED_CLAIMS == ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]


def test_lifetime_comes_from_the_settings(tokens: AccessTokens) -> None:
    assert tokens.lifetime == timedelta(minutes=7)


def test_issue_signs_every_claim_with_the_current_key(tokens: AccessTokens, now: datetime) -> None:
    login = now - timedelta(minutes=3)
    token, claims = tokens.issue(42, 3, authenticated_at=login)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": "new"}
    payload = jwt.decode(token, NEW_KEY, algorithms=["HS256"], audience="audience-y")
    stamp = int(now.timestamp())
    assert payload == {
        "sub": "42",
        "iat": stamp,
        "nbf": stamp,
        "exp": stamp + 7 * 60,
        "iss": "issuer-x",
        "aud": "audience-y",
        "jti": claims.jti,
        "ver": 3,
        "auth_time": int(login.timestamp()),
    }
    assert len(claims.jti) == 32
    assert claims == AccessClaims("42", claims.jti, 3, now + timedelta(minutes=7), login)


def test_issue_without_a_login_time_has_no_auth_time(tokens: AccessTokens) -> None:
    token, claims = tokens.issue(42, 1)
    assert "auth_time" not in jwt.decode(token, options={"verify_signature": False})
    assert claims.authenticated_at is None
    assert tokens.issue(42, 1)[1].jti != claims.jti


def test_verify_returns_the_claims_in_the_clocks_zone(tokens: AccessTokens, now: datetime) -> None:
    login = now - timedelta(minutes=3)
    token, issued = tokens.issue(42, 3, authenticated_at=login)
    verified = tokens.verify(token)
    assert verified == issued
    assert verified.expires_at.utcoffset() == timedelta(hours=2)
    assert verified.authenticated_at is not None
    assert verified.authenticated_at.utcoffset() == timedelta(hours=2)


def test_verify_accepts_every_configured_key(tokens: AccessTokens, now: datetime) -> None:
    token = sign(valid_claims(now, auth_time=int(now.timestamp())), OLD_KEY, "old")
    claims = tokens.verify(token)
    assert (claims.subject, claims.jti, claims.version) == ("42", "the-jti", 3)
    assert claims.expires_at == now + timedelta(minutes=5)
    assert claims.authenticated_at == now


def test_verify_without_auth_time(tokens: AccessTokens, now: datetime) -> None:
    assert tokens.verify(sign(valid_claims(now))).authenticated_at is None


def test_malformed_tokens(tokens: AccessTokens) -> None:
    assert refusal(tokens, "not a token") == "The access token is malformed."


def test_unknown_or_missing_key_ids(tokens: AccessTokens, now: datetime) -> None:
    unknown = "The access token was signed with an unknown key."
    assert refusal(tokens, sign(valid_claims(now), NEW_KEY, "gone")) == unknown
    unsigned_kid = jwt.encode(valid_claims(now), NEW_KEY, algorithm="HS256")
    assert refusal(tokens, unsigned_kid) == unknown


def test_timing_refusals(tokens: AccessTokens, now: datetime) -> None:
    expired = valid_claims(now, exp=now - timedelta(minutes=1))
    assert refusal(tokens, sign(expired)) == "The access token has expired."
    early = valid_claims(now, nbf=now + timedelta(minutes=1))
    assert refusal(tokens, sign(early)) == "The access token is not valid yet."


def test_tokens_for_someone_else(tokens: AccessTokens, now: datetime) -> None:
    elsewhere = "The access token is not meant for this API."
    assert refusal(tokens, sign(valid_claims(now, aud="other"))) == elsewhere
    assert refusal(tokens, sign(valid_claims(now, iss="other"))) == elsewhere


@pytest.mark.parametrize("missing", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"])
def test_every_required_claim_is_required(
    tokens: AccessTokens, now: datetime, missing: str
) -> None:
    claims = valid_claims(now)
    del claims[missing]
    assert refusal(tokens, sign(claims)) == "The access token is invalid."


def test_bad_signatures_and_algorithms(tokens: AccessTokens, now: datetime) -> None:
    invalid = "The access token is invalid."
    assert refusal(tokens, sign(valid_claims(now), OLD_KEY, "new")) == invalid
    unsigned = jwt.encode(valid_claims(now), None, algorithm="none", headers={"kid": "new"})
    assert refusal(tokens, unsigned) == invalid


@pytest.mark.parametrize(
    "overrides",
    [{"ver": None}, {"ver": "3"}, {"auth_time": "yesterday"}, {"auth_time": 1.5}],
    ids=["no-version", "text-version", "text-auth-time", "float-auth-time"],
)
def test_bad_version_or_login_time(
    tokens: AccessTokens, now: datetime, overrides: dict[str, object]
) -> None:
    assert refusal(tokens, sign(valid_claims(now, **overrides))) == "The access token is invalid."


def test_new_secrets_are_url_safe_and_256_bits() -> None:
    secret = new_secret()
    assert len(secret) == 43
    assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert new_secret() != secret


def test_digest_is_sha256_hex_and_compares_exactly() -> None:
    assert digest("s3cret") == hashlib.sha256(b"s3cret").hexdigest()
    assert same_digest("s3cret", digest("s3cret"))
    assert not same_digest("s3cret", digest("other"))


def test_new_api_keys_split_back_into_their_parts() -> None:
    key, prefix, secret = new_api_key()
    assert API_KEY_PREFIX == "psk"
    assert key == f"psk_{prefix}_{secret}"
    assert len(prefix) == 12
    assert int(prefix, 16) >= 0
    assert len(secret) == 43
    assert split_api_key(key) == (prefix, secret)
    assert new_api_key()[1] != prefix


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("psk_abc_sec_ret", ("abc", "sec_ret")),
        ("psk_abc", None),
        ("xsk_abc_secret", None),
        ("psk__secret", None),
        ("psk_abc_", None),
        ("", None),
    ],
)
def test_split_api_key(value: str, parts: tuple[str, str] | None) -> None:
    assert split_api_key(value) == parts


def test_the_development_key_signs_without_configured_keys(tmp_path: Path, now: datetime) -> None:
    config = replace(settings(), SIGNING_KEYS={}, CURRENT_KEY=None)
    tokens = AccessTokens(config, FixedClock(now), SigningKeys(config, tmp_path))
    token, _ = tokens.issue(1, 1)
    assert jwt.get_unverified_header(token)["kid"] == "dev"
    assert tokens.verify(token).subject == "1"


def test_the_development_key_is_64_url_safe_characters_in_a_new_folder(tmp_path: Path) -> None:
    instance = tmp_path / "deep" / "instance"  # parents are created too
    key = development_key(instance)
    assert len(key) == 64  # 48 random bytes
    assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert (instance / DEVELOPMENT_KEY_FILE).read_text(encoding="ascii") == key + "\n"


def test_a_development_key_of_the_minimum_length_is_accepted(tmp_path: Path) -> None:
    (tmp_path / DEVELOPMENT_KEY_FILE).write_text("k" * 32 + "\n", encoding="ascii")
    assert development_key(tmp_path) == "k" * 32
    (tmp_path / DEVELOPMENT_KEY_FILE).write_text("k" * 31 + "\n", encoding="ascii")
    with pytest.raises(SigningKeyError, match="shorter than 32 characters"):
        development_key(tmp_path)


def test_an_unreadable_development_key_says_which_file(tmp_path: Path) -> None:
    (tmp_path / DEVELOPMENT_KEY_FILE).mkdir()
    with pytest.raises(SigningKeyError) as caught:
        development_key(tmp_path)
    assert str(caught.value).startswith(
        f"cannot read the development signing key {tmp_path / DEVELOPMENT_KEY_FILE}: "
    )
