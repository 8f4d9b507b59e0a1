"""Logins: password login, rotating refresh tokens, logout."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from injector import inject

from plugins.accounts.models import RefreshToken, User
from plugins.accounts.passwords import Passwords
from plugins.accounts.repository import AccountsRepository
from plugins.accounts.settings import AccountsSettings
from plugins.accounts.tokens import AccessTokens, digest, new_secret
from plugins.accounts.users import normalise_email
from powerstrip import Caller, Clock, Problem, RateLimits, UnitOfWork

INVALID_LOGIN = "Invalid email or password."


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class AuthService:
    """Log in, rotate refresh tokens, log out."""

    @inject
    def __init__(
        self,
        repository: AccountsRepository,
        uow: UnitOfWork,
        passwords: Passwords,
        tokens: AccessTokens,
        settings: AccountsSettings,
        clock: Clock,
        rate_limits: RateLimits,
    ) -> None:
        self._repository = repository
        self._uow = uow
        self._passwords = passwords
        self._tokens = tokens
        self._settings = settings
        self._clock = clock
        self._limits = rate_limits

    def login(self, email: str, password: str, address: str) -> TokenPair:
        """Tokens for valid credentials; the same 401 (and the same work) otherwise.

        Attempts are limited per client address, and failures per account: past the limit
        the caller waits (429 with Retry-After), whether or not the account exists.
        """
        email = normalise_email(email)
        self._limits.hit(
            f"login-address:{address}",
            self._settings.LOGIN_LIMIT_PER_ADDRESS,
            detail="Too many login attempts from this address.",
        )
        failures = f"login-failures:{digest(email)}"
        if self._limits.exceeded(failures, self._settings.LOGIN_FAILURES_PER_ACCOUNT):
            raise Problem(
                429,
                "Too many failed logins; wait before trying again.",
                headers={"Retry-After": "60"},
            )
        user = self._repository.user_by_email(email)
        valid = self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not valid or not user.is_active:
            self._limits.hit(
                failures, self._settings.LOGIN_FAILURES_PER_ACCOUNT, detail=INVALID_LOGIN
            )
            raise Problem(401, INVALID_LOGIN)
        self._limits.clear(failures, self._settings.LOGIN_FAILURES_PER_ACCOUNT)
        with self._uow:
            if self._passwords.needs_rehash(user.password_hash):
                user.password_hash = self._passwords.hash(password)
            return self._issue(user, uuid.uuid4().hex, authenticated_at=self._clock.now())

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token dies; presenting a dead one revokes its whole family.

        Single use even under concurrency: of requests presenting one token at the same time,
        exactly one gets new tokens (a conditional UPDATE claims the token). The others are
        treated as reuse, as the OAuth 2.0 Security BCP advises: a token presented twice may
        be a stolen copy, so they get a 401 and the whole family is revoked, including the
        token the winner just received; its owner logs in again.
        """
        now = self._clock.now()
        with self._uow:
            stored = self._repository.refresh_token(digest(refresh_token))
            if stored is None:
                raise Problem(401, "The refresh token is invalid.")
            if stored.revoked_at is not None and stored.used_at is None:
                raise Problem(401, "The refresh token was revoked.")
            user = self._repository.user(stored.user_id)
            if stored.used_at is None and (
                stored.expires_at <= now
                or user is None
                or not user.is_active
                or user.token_version != stored.token_version
            ):
                raise Problem(401, "The refresh token has expired or was revoked.")
            if user is not None and self._repository.use_refresh_token(stored.id, now):
                return self._issue(user, stored.family, stored.authenticated_at)
            # Used before, or by a request racing this one: someone else holds the family.
            self._repository.revoke_family(stored.family, now)
        raise Problem(401, "The refresh token was already used; its session is revoked.")

    def logout(self, caller: Caller, refresh_token: str | None) -> None:
        """Revoke the caller's access token and the refresh token's family (idempotent)."""
        now = self._clock.now()
        with self._uow:
            jti = caller.credential
            if caller.kind == "user" and jti:
                # Kept as long as the token could live; after that the token is dead anyway.
                self._repository.revoke_access_token(jti, now + self._tokens.lifetime)
            if refresh_token:
                stored = self._repository.refresh_token(digest(refresh_token))
                if stored is not None:
                    self._repository.revoke_family(stored.family, now)

    def _issue(self, user: User, family: str, authenticated_at: datetime | None) -> TokenPair:
        now = self._clock.now()
        access, _ = self._tokens.issue(user.id, user.token_version, authenticated_at)
        secret = new_secret()
        self._repository.add(
            RefreshToken(
                user_id=user.id,
                family=family,
                token_hash=digest(secret),
                token_version=user.token_version,
                created_at=now,
                expires_at=now + timedelta(days=self._settings.REFRESH_TOKEN_DAYS),
                authenticated_at=authenticated_at,
            )
        )
        return TokenPair(access, secret, int(self._tokens.lifetime.total_seconds()))
