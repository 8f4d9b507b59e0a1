"""Who is calling: the accounts plugin's ``Authenticator`` and its ``Directory``.

The host calls :meth:`AccountsAuthenticator.authenticate` once per request, before the view
and outside the injector, so the look-ups here never hold other requests up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from flask import Request
from injector import inject

from plugins.accounts.lookups import OwnerLookups
from plugins.accounts.repository import AccountsRepository, BearerOwner, KeyAndOwner
from plugins.accounts.roles import ALL_SCOPES, RoleScopes
from plugins.accounts.tokens import AccessTokens, TokenError, same_digest, split_api_key
from powerstrip import API_KEY_HEADER, Clock, Principal, UnitOfWork

AUTHORIZATION = "Authorization"
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
BEARER_USAGE = "Use 'Authorization: Bearer <access token>'."
REVOKED_TOKEN = "The access token was revoked."  # noqa: S105 - a message, not a secret
REFUSED_KEY = "The API key is invalid or revoked."
MAX_ID_DIGITS = 18  # a subject of more digits is no user id (ids are 64-bit)


class CurrentLogin:
    """The password login behind the current request's access token (request-scoped).

    The SDK's ``Caller`` says who is calling, not when they last proved it with a password;
    the authenticator notes it here for the services that ask for a recent login.
    """

    def __init__(self) -> None:
        self.authenticated_at: datetime | None = (
            None  # None: no access token, or its login is unknown
        )


class AccountsAuthenticator:
    """A bearer access token or an API key -> the caller; no credentials -> None."""

    credentials: ClassVar[tuple[str, ...]] = (AUTHORIZATION, API_KEY_HEADER)

    @inject
    def __init__(
        self,
        repository: AccountsRepository,
        uow: UnitOfWork,
        tokens: AccessTokens,
        roles: RoleScopes,
        clock: Clock,
        login: CurrentLogin,
        lookups: OwnerLookups,
    ) -> None:
        self._repository = repository
        self._lookups = lookups
        self._uow = uow
        self._tokens = tokens
        self._roles = roles
        self._clock = clock
        self._login = login

    def authenticate(self, request: Request) -> Principal | None:
        """The principal of the request's bearer token or API key (refused: with the reason)."""
        authorization = request.headers.get(AUTHORIZATION, "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return Principal.refused(BEARER_USAGE)
            return self.bearer(token.strip())
        api_key = request.headers.get(API_KEY_HEADER)
        if api_key:
            return self.api_key(api_key.strip())
        return None

    def bearer(self, token: str) -> Principal:
        """The principal of an access token."""
        try:
            claims = self._tokens.verify(token)
        except TokenError as exc:
            return Principal.refused(str(exc))
        subject = claims.subject
        if not subject.isdigit() or len(subject) > MAX_ID_DIGITS:
            return Principal.refused(REVOKED_TOKEN)
        user = self._bearer_owner(int(subject), claims.jti, claims.version)
        if user is None:
            return Principal.refused(REVOKED_TOKEN)
        self._login.authenticated_at = claims.authenticated_at
        return Principal.of(str(user.id), "user", self._roles.of(user.role), claims.jti)

    def _bearer_owner(self, user_id: int, jti: str, version: int) -> BearerOwner | None:
        """The owner of a token that is let in (a kept look-up, or a fresh one then kept);
        None when the token is refused."""
        kept = self._lookups.bearer
        token = (user_id, jti, version)
        user = kept.get(token)
        if user is not None:
            return user
        since = kept.now()
        user = self._repository.bearer_owner(user_id, jti)
        if (
            user is None
            or not user.is_active
            or user.token_version != version
            or user.token_revoked
        ):
            return None
        kept.put(token, user, since)
        return user

    def api_key(self, value: str) -> Principal:
        """The principal of an API key; records when the key was last used."""
        parts = split_api_key(value)
        if parts is None:
            return Principal.refused(REFUSED_KEY)
        kept = self._lookups.api_keys
        key = kept.get(parts[0])
        since = None  # when a key not kept was looked up
        if key is None:
            since = kept.now()
            key = self._repository.api_key_and_owner(parts[0])
            if key is None or key.revoked_at is not None or not key.owner_is_active:
                return Principal.refused(REFUSED_KEY)
        if not same_digest(parts[1], key.secret_hash):
            return Principal.refused(REFUSED_KEY)
        if since is not None:
            kept.put(parts[0], key, since)
        touched = self._touch(key)
        if touched is not key:  # in the kept look-up's place and window, if still kept
            kept.replace(parts[0], key, touched)
        allowed = self._roles.of(key.owner_role)
        scopes = {s for s in key.scopes if ALL_SCOPES in allowed or s in allowed}
        return Principal.of(str(key.user_id), "api_key", frozenset(scopes), str(key.id))

    def _touch(self, key: KeyAndOwner) -> KeyAndOwner:
        """Record the key's use, at most once a minute per key (a busy machine client does not
        write on every call); the key as it now stands."""
        now = self._clock.now()
        if key.last_used_at is None or key.last_used_at < now - API_KEY_TOUCH_INTERVAL:
            with self._uow:
                self._repository.api_key_used(key.id, now)
            return key._replace(last_used_at=now)
        return key


class AccountsDirectory:
    """The SDK's ``Directory``: a principal id exists when it names an active user."""

    @inject
    def __init__(self, repository: AccountsRepository) -> None:
        self._repository = repository

    def exists(self, subject: str) -> bool:
        """Whether ``subject`` is the id of an active user."""
        if not subject.isdigit() or len(subject) > MAX_ID_DIGITS:
            return False
        user = self._repository.user(int(subject))
        return user is not None and user.is_active
