"""Access tokens (JWT, HS256 pinned, key ids for rotation) and opaque secrets stored as hashes."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from plugins.accounts.settings import AccountsSettings
from plugins.accounts.signing import SigningKeys
from powerstrip import Clock

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]
API_KEY_PREFIX = "psk"
# Access tokens whose signature and claims a process has checked and remembers (about 0.8 KiB
# each with the token, 3 MiB when full): a token presented again is only checked for expiry.
VERIFIED_TOKENS = 4096


class TokenError(Exception):
    """A presented token is not acceptable; the message is safe to show the caller."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says."""

    subject: str
    jti: str
    version: int
    expires_at: datetime
    authenticated_at: datetime | None = None  # the password login's time (``auth_time``)


class AccessTokens:
    """Issue and verify short-lived access tokens.

    Signing uses ``CURRENT_KEY``; verification accepts every key of ``SIGNING_KEYS`` (by the
    ``kid`` header), so keys rotate: add the new key, make it current, drop the old one after
    the access-token lifetime. Each token carries ``auth_time``, when the password login it
    descends from happened (refreshes keep it), so a sensitive operation can ask for a recent
    one.

    Verifying a token (its signature, algorithm, issuer, audience and claims) gives the same
    answer every time but for expiry, so the claims of the last ``VERIFIED_TOKENS`` valid
    tokens are remembered and a token presented again is only checked against its ``exp``
    (PyJWT's test: expired when ``exp <= now``). Refusals are not remembered. Revocation,
    logout and deactivation are the database's, checked on every request by the caller.
    """

    def __init__(self, settings: AccountsSettings, clock: Clock, keys: SigningKeys) -> None:
        self._settings = settings
        self._clock = clock
        self._keys = keys
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._check)

    @property
    def lifetime(self) -> timedelta:
        """How long an access token lives."""
        return timedelta(minutes=self._settings.ACCESS_TOKEN_MINUTES)

    def issue(
        self, user_id: int, version: int, authenticated_at: datetime | None = None
    ) -> tuple[str, AccessClaims]:
        """A signed access token for the user, and its claims.

        :param authenticated_at: when the user logged in with the password (None: unknown)
        """
        now = self._clock.now()
        expires = now + self.lifetime
        jti = uuid.uuid4().hex
        payload: dict[str, object] = {
            "sub": str(user_id),
            "iat": now,
            "nbf": now,
            "exp": expires,
            "iss": self._settings.ISSUER,
            "aud": self._settings.AUDIENCE,
            "jti": jti,
            "ver": version,
        }
        if authenticated_at is not None:
            payload["auth_time"] = int(authenticated_at.timestamp())
        kid, key = self._keys.current()
        token = jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": kid})
        return token, AccessClaims(str(user_id), jti, version, expires, authenticated_at)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token; :class:`TokenError` saying why otherwise."""
        claims, expires = self._verified(token)
        if expires <= time.time():  # PyJWT's own test, for a token checked before
            raise TokenError("The access token has expired.")
        return claims

    def _check(self, token: str) -> tuple[AccessClaims, float]:
        """The claims of a valid token and its ``exp``; :class:`TokenError` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenError("The access token is malformed.") from None
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise TokenError("The access token was signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],  # pinned: "none" and every other algorithm are refused
                audience=self._settings.AUDIENCE,
                issuer=self._settings.ISSUER,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("The access token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("The access token is not valid yet.") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise TokenError("The access token is not meant for this API.") from None
        except jwt.InvalidTokenError:
            raise TokenError("The access token is invalid.") from None
        version = claims.get("ver")
        auth_time = claims.get("auth_time")
        if not isinstance(version, int) or not isinstance(auth_time, int | None):
            raise TokenError("The access token is invalid.")
        zone = self._clock.now().tzinfo
        expires = datetime.fromtimestamp(claims["exp"], tz=zone)
        authenticated = None if auth_time is None else datetime.fromtimestamp(auth_time, tz=zone)
        subject, jti = str(claims["sub"]), str(claims["jti"])
        return AccessClaims(subject, jti, version, expires, authenticated), float(claims["exp"])


def new_secret() -> str:
    """An opaque, URL-safe secret with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """The stored form of a high-entropy secret (refresh token, API key): SHA-256 hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, stored: str) -> bool:
    """Constant-time comparison of ``secret`` with a stored digest."""
    return hmac.compare_digest(digest(secret), stored)


def new_api_key() -> tuple[str, str, str]:
    """(full key shown once, visible prefix, secret part) of a new API key."""
    prefix = secrets.token_hex(6)
    secret = new_secret()
    return f"{API_KEY_PREFIX}_{prefix}_{secret}", prefix, secret


def split_api_key(value: str) -> tuple[str, str] | None:
    """(prefix, secret) of a presented API key, or None when it is not shaped like one."""
    parts = value.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]
