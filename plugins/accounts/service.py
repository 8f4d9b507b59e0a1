"""Business rules of the accounts plugin: users, logins and tokens, API keys, who is calling."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from injector import inject

from app import Clock, Principal, Problem, RateLimits, UnitOfWork
from plugins.accounts.models import ApiKey, RefreshToken, RevokedAccessToken, User
from plugins.accounts.passwords import Passwords
from plugins.accounts.repository import AccountsRepository
from plugins.accounts.settings import AccountsSettings
from plugins.accounts.tokens import (
    AccessClaims,
    AccessTokens,
    TokenError,
    digest,
    new_api_key,
    new_secret,
    same_digest,
    split_api_key,
)

INVALID_LOGIN = "Invalid email or password."
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def normalise_email(email: str) -> str:
    """Emails are compared and stored trimmed and lower-cased."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class UserService:
    """Create, read, update, deactivate users."""

    @inject
    def __init__(
        self,
        repository: AccountsRepository,
        uow: UnitOfWork,
        passwords: Passwords,
        settings: AccountsSettings,
        clock: Clock,
    ) -> None:
        self._repository = repository
        self._uow = uow
        self._passwords = passwords
        self._settings = settings
        self._clock = clock

    def scopes_of(self, user: User) -> frozenset[str]:
        """What the user's role allows."""
        return frozenset(self._settings.ROLE_SCOPES.get(user.role, ()))

    def create(self, email: str, password: str, role: str = "user") -> User:
        """A new active user; 409 if the email is taken, 422 for a weak password or bad role."""
        email = normalise_email(email)
        if role not in self._settings.ROLE_SCOPES:
            raise Problem(422, f"Unknown role {role!r}.", errors={"role": ["Unknown role."]})
        self._check_password(password, email)
        now = self._clock.now()
        with self._uow:
            if self._repository.user_by_email(email) is not None:
                raise Problem(409, "A user with this email already exists.")
            user = User(
                email=email,
                password_hash=self._passwords.hash(password),
                role=role,
                is_active=True,
                token_version=1,
                created_at=now,
                updated_at=now,
            )
            self._repository.add(user)
        return user

    def get(self, user_id: int) -> User:
        """A user, or a 404 problem."""
        user = self._repository.user(user_id)
        if user is None:
            raise Problem(404, "No such user.")
        return user

    def list(
        self, *, email: str | None, active: bool | None, role: str | None, page: int, size: int
    ) -> tuple[Sequence[User], int]:
        """A page of users and the total count."""
        return self._repository.users(
            email=email, active=active, role=role, offset=(page - 1) * size, limit=size
        )

    def change_password(self, user_id: int, current: str, new: str) -> User:
        """Change one's own password (the current one is required); old tokens die."""
        user = self.get(user_id)
        if not self._passwords.verify(user.password_hash, current):
            raise Problem(
                422, "The current password is wrong.", errors={"current_password": ["Wrong."]}
            )
        self._check_password(new, user.email)
        with self._uow:
            user.password_hash = self._passwords.hash(new)
            self._invalidate_tokens(user)
        return user

    def update(self, user_id: int, *, role: str | None, is_active: bool | None) -> User:
        """Change a user's role or (de)activate it; deactivation kills its tokens."""
        user = self.get(user_id)
        if role is not None and role not in self._settings.ROLE_SCOPES:
            raise Problem(422, f"Unknown role {role!r}.", errors={"role": ["Unknown role."]})
        with self._uow:
            if role is not None:
                user.role = role
            if is_active is not None and is_active != user.is_active:
                user.is_active = is_active
                self._invalidate_tokens(user)
            user.updated_at = self._clock.now()
        return user

    def _invalidate_tokens(self, user: User) -> None:
        now = self._clock.now()
        user.token_version += 1
        user.updated_at = now
        self._repository.revoke_user_tokens(user.id, now)

    def _check_password(self, password: str, email: str) -> None:
        problems = self._passwords.problems(password, email)
        if problems:
            raise Problem(422, "The password is not acceptable.", errors={"password": problems})


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
            return self._issue(user, family=uuid.uuid4().hex)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token dies; presenting a dead one revokes its whole family."""
        now = self._clock.now()
        with self._uow:
            stored = self._repository.refresh_token(digest(refresh_token))
            if stored is None:
                raise Problem(401, "The refresh token is invalid.")
            if stored.used_at is not None:
                # Reuse of a rotated token: someone else holds the family. Revoke all of it.
                self._repository.revoke_family(stored.family, now)
                reused = True
            elif stored.revoked_at is not None:
                raise Problem(401, "The refresh token was revoked.")
            else:
                reused = False
                user = self._repository.user(stored.user_id)
                if (
                    stored.expires_at <= now
                    or user is None
                    or not user.is_active
                    or user.token_version != stored.token_version
                ):
                    raise Problem(401, "The refresh token has expired or was revoked.")
                stored.used_at = now
                pair = self._issue(user, family=stored.family)
        if reused:
            raise Problem(401, "The refresh token was already used; its session is revoked.")
        return pair

    def logout(self, principal: Principal, refresh_token: str | None) -> None:
        """Revoke the caller's access token and the refresh token's family."""
        now = self._clock.now()
        with self._uow:
            jti = principal.credential
            if principal.kind == "user" and jti and not self._repository.access_token_revoked(jti):
                # Kept as long as the token could live; after that the token is dead anyway.
                expires = now + self._tokens.lifetime
                self._repository.add(RevokedAccessToken(jti=jti, expires_at=expires))
            if refresh_token:
                stored = self._repository.refresh_token(digest(refresh_token))
                if stored is not None:
                    self._repository.revoke_family(stored.family, now)

    def _issue(self, user: User, family: str) -> TokenPair:
        now = self._clock.now()
        access, _ = self._tokens.issue(user.id, user.token_version)
        secret = new_secret()
        self._repository.add(
            RefreshToken(
                user_id=user.id,
                family=family,
                token_hash=digest(secret),
                token_version=user.token_version,
                created_at=now,
                expires_at=now + timedelta(days=self._settings.REFRESH_TOKEN_DAYS),
            )
        )
        return TokenPair(access, secret, int(self._tokens.lifetime.total_seconds()))


class ApiKeyService:
    """Create, list and revoke API keys; the secret is shown once and stored as a hash."""

    @inject
    def __init__(
        self, repository: AccountsRepository, uow: UnitOfWork, users: UserService, clock: Clock
    ) -> None:
        self._repository = repository
        self._uow = uow
        self._users = users
        self._clock = clock

    def create(self, owner: Principal, name: str, scopes: Iterable[str]) -> tuple[str, ApiKey]:
        """A new key for the caller, limited to scopes the caller holds."""
        wanted = sorted(set(scopes))
        missing = [scope for scope in wanted if not owner.has(scope)]
        if missing:
            raise Problem(403, f"You cannot grant scopes you do not hold: {', '.join(missing)}.")
        value, prefix, secret = new_api_key()
        with self._uow:
            key = ApiKey(
                user_id=int(owner.subject or 0),
                name=name,
                prefix=prefix,
                secret_hash=digest(secret),
                scopes=wanted,
                created_at=self._clock.now(),
            )
            self._repository.add(key)
        return value, key

    def list(self, owner: Principal) -> Sequence[ApiKey]:
        """The caller's keys."""
        return self._repository.api_keys(int(owner.subject or 0))

    def revoke(self, owner: Principal, key_id: int) -> None:
        """Revoke one of the caller's keys (admins: anyone's)."""
        with self._uow:
            key = self._repository.session.get(ApiKey, key_id)
            if key is None or (
                str(key.user_id) != owner.subject and not owner.has("accounts:admin")
            ):
                raise Problem(404, "No such API key.")
            if key.revoked_at is None:
                key.revoked_at = self._clock.now()


class Authenticator:
    """Turns the request's credentials into a :class:`~app.Principal`."""

    @inject
    def __init__(
        self,
        repository: AccountsRepository,
        tokens: AccessTokens,
        users: UserService,
        clock: Clock,
    ) -> None:
        self._repository = repository
        self._tokens = tokens
        self._users = users
        self._clock = clock

    def bearer(self, token: str) -> tuple[Principal, AccessClaims | None]:
        """The principal of an access token (anonymous with the reason when refused)."""
        try:
            claims = self._tokens.verify(token)
        except TokenError as exc:
            return Principal(problem=str(exc)), None
        user = self._repository.user(int(claims.subject)) if claims.subject.isdigit() else None
        if user is None or not user.is_active or user.token_version != claims.version:
            return Principal(problem="The access token was revoked."), None
        if self._repository.access_token_revoked(claims.jti):
            return Principal(problem="The access token was revoked."), None
        principal = Principal(
            kind="user",
            subject=str(user.id),
            scopes=self._users.scopes_of(user),
            credential=claims.jti,
        )
        return principal, claims

    def api_key(self, value: str) -> Principal:
        """The principal of an API key (anonymous with the reason when refused)."""
        refused = Principal(problem="The API key is invalid or revoked.")
        parts = split_api_key(value)
        if parts is None:
            return refused
        key = self._repository.api_key_by_prefix(parts[0])
        if key is None or key.revoked_at is not None or not same_digest(parts[1], key.secret_hash):
            return refused
        owner = self._repository.user(key.user_id)
        if owner is None or not owner.is_active:
            return refused
        now = self._clock.now()
        if key.last_used_at is None or key.last_used_at < now - API_KEY_TOUCH_INTERVAL:
            key.last_used_at = now
            self._repository.session.commit()
        allowed = self._users.scopes_of(owner)
        scopes = frozenset(s for s in key.scopes if "*" in allowed or s in allowed)
        return Principal(
            kind="api_key", subject=str(owner.id), scopes=scopes, credential=str(key.id)
        )
