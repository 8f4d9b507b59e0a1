"""API keys: create (the secret is shown once), list, revoke.

An API key outlives the access token that created it, so creating one through the API needs
a recent password login: a bearer token whose ``auth_time`` is at most
``API_KEY_FRESH_LOGIN_MINUTES`` old. An API key cannot create another one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from injector import inject

from plugins.accounts.authentication import CurrentLogin
from plugins.accounts.models import ApiKey, User
from plugins.accounts.repository import AccountsRepository
from plugins.accounts.settings import AccountsSettings
from plugins.accounts.tokens import digest, new_api_key
from plugins.accounts.users import UserService, account_id, normalise_email
from powerstrip import Caller, Clock, Problem, UnitOfWork

NOT_WITH_API_KEY = (
    "An API key cannot create API keys: log in with your password and use the access token."
)


class ApiKeyService:
    """Create, list and revoke API keys; the secret is shown once and stored as a hash."""

    @inject
    def __init__(
        self,
        repository: AccountsRepository,
        uow: UnitOfWork,
        users: UserService,
        clock: Clock,
        settings: AccountsSettings,
        login: CurrentLogin,
    ) -> None:
        self._repository = repository
        self._uow = uow
        self._users = users
        self._clock = clock
        self._settings = settings
        self._login = login

    def create_for(self, email: str, name: str, scopes: Iterable[str]) -> tuple[str, ApiKey, User]:
        """A new key for the active user ``email`` (an operator's command), within its scopes."""
        owner = self._repository.user_by_email(normalise_email(email))
        if owner is None or not owner.is_active:
            raise Problem(404, f"No active user {email}.")
        caller = Caller(str(owner.id), "user", self._users.scopes_of(owner))
        value, key = self._create(caller, name, scopes)
        return value, key, owner

    def create(self, owner: Caller, name: str, scopes: Iterable[str]) -> tuple[str, ApiKey]:
        """A new key for the caller, limited to scopes the caller holds; the caller must have
        logged in with a password recently (403 otherwise, saying why)."""
        self._require_fresh_login(owner)
        return self._create(owner, name, scopes)

    def list(self, owner: Caller) -> Sequence[ApiKey]:
        """The caller's keys."""
        return self._repository.api_keys(account_id(owner))

    def revoke(self, owner: Caller, key_id: int) -> None:
        """Revoke one of the caller's keys (admins: anyone's)."""
        with self._uow:
            key = self._repository.session.get(ApiKey, key_id)
            if key is None or (
                str(key.user_id) != owner.subject and not owner.has("accounts:admin")
            ):
                raise Problem(404, "No such API key.")
            if key.revoked_at is None:
                key.revoked_at = self._clock.now()

    def _require_fresh_login(self, owner: Caller) -> None:
        account_id(owner)
        if owner.kind == "api_key":
            raise Problem(403, NOT_WITH_API_KEY)
        minutes = self._settings.API_KEY_FRESH_LOGIN_MINUTES
        logged_in = self._login.authenticated_at
        if logged_in is None or logged_in < self._clock.now() - timedelta(minutes=minutes):
            raise Problem(
                403,
                f"Creating an API key needs a password login from the last {minutes} "
                "minute(s); this access token's login is older. Log in again and retry.",
            )

    def _create(self, owner: Caller, name: str, scopes: Iterable[str]) -> tuple[str, ApiKey]:
        wanted = sorted(set(scopes))
        missing = [scope for scope in wanted if not owner.has(scope)]
        if missing:
            raise Problem(403, f"You cannot grant scopes you do not hold: {', '.join(missing)}.")
        user_id = account_id(owner)
        value, prefix, secret = new_api_key()
        with self._uow:
            key = ApiKey(
                user_id=user_id,
                name=name,
                prefix=prefix,
                secret_hash=digest(secret),
                scopes=wanted,
                created_at=self._clock.now(),
            )
            self._repository.add(key)
        return value, key
