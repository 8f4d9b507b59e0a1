"""Users: create, read, change password, change role, (de)activate."""

from __future__ import annotations

from injector import inject

from plugins.accounts.models import User
from plugins.accounts.passwords import Passwords
from plugins.accounts.repository import AccountsRepository
from plugins.accounts.roles import ADMIN_ROLE, RoleScopes
from plugins.accounts.settings import AccountsSettings
from powerstrip import Caller, Clock, Page, PageRequest, Problem, UnitOfWork

EMAIL_TAKEN = "A user with this email already exists."
LAST_ADMIN = (
    "This is the last active admin: it cannot be demoted or deactivated. "
    "Make another user an admin first."
)


def account_id(caller: Caller) -> int:
    """The id of the account ``caller`` is; a 403 problem for a caller that is none of ours
    (another plugin's authenticator, a test caller), whose subject is not an account id."""
    if caller.kind not in {"user", "api_key"} or not caller.subject.isdigit():
        raise Problem(403, "Only an account of this API can do this.")
    return int(caller.subject)


def normalise_email(email: str) -> str:
    """Emails are compared and stored trimmed and lower-cased."""
    return email.strip().lower()


class UserService:
    """Create, read, update, deactivate users."""

    @inject
    def __init__(
        self,
        repository: AccountsRepository,
        uow: UnitOfWork,
        passwords: Passwords,
        roles: RoleScopes,
        clock: Clock,
        settings: AccountsSettings,
    ) -> None:
        self._repository = repository
        self._uow = uow
        self._passwords = passwords
        self._roles = roles
        self._clock = clock
        self._settings = settings

    def scopes_of(self, user: User) -> frozenset[str]:
        """What the user's role allows."""
        return self._roles.of(user.role)

    def create(self, email: str, password: str, role: str = "user") -> User:
        """A new active user; 409 if the email is taken, 422 for a weak password or bad role."""
        email = normalise_email(email)
        self._check_role(role)
        self._check_password(password, email)
        password_hash = self._passwords.hash(password)  # slow: not inside the transaction
        now = self._clock.now()
        with self._uow:
            if self._repository.user_by_email(email) is not None:
                raise Problem(409, EMAIL_TAKEN)
            user = self._repository.add_user(
                User(
                    email=email,
                    password_hash=password_hash,
                    role=role,
                    is_active=True,
                    token_version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            if user is None:  # a create of the same email won the race since the check
                raise Problem(409, EMAIL_TAKEN)
        return user

    def get(self, user_id: int) -> User:
        """A user, or a 404 problem."""
        user = self._repository.user(user_id)
        if user is None:
            raise Problem(404, "No such user.")
        return user

    def by_email(self, email: str) -> User:
        """A user by email, or a 404 problem."""
        user = self._repository.user_by_email(normalise_email(email))
        if user is None:
            raise Problem(404, f"No user {email}.")
        return user

    def list(
        self, *, email: str | None, active: bool | None, role: str | None, paging: PageRequest
    ) -> Page[User]:
        """A page of users matching the filters."""
        return self._repository.users(email=email, active=active, role=role, paging=paging)

    def change_password(self, user_id: int, current: str, new: str) -> User:
        """Change one's own password (the current one is required); old tokens die, and the
        user's API keys too unless ``REVOKE_API_KEYS_ON_PASSWORD_CHANGE`` is off."""
        user = self.get(user_id)
        if not self._passwords.verify(user.password_hash, current):
            raise Problem(
                422, "The current password is wrong.", errors={"current_password": ["Wrong."]}
            )
        self._check_password(new, user.email)
        with self._uow:
            user.password_hash = self._passwords.hash(new)
            self._invalidate_tokens(user, self._settings.REVOKE_API_KEYS_ON_PASSWORD_CHANGE)
        return user

    def update(self, user_id: int, *, role: str | None, is_active: bool | None) -> User:
        """Change a user's role or (de)activate it; deactivation kills its tokens (and its API
        keys unless ``REVOKE_API_KEYS_ON_DEACTIVATION`` is off).

        The last active admin can be neither demoted nor deactivated (409). The active admins
        are locked first, so two admins demoting each other at once cannot both succeed.
        """
        if role is not None:
            self._check_role(role)
        demotes = (role is not None and role != ADMIN_ROLE) or is_active is False
        with self._uow:
            admins = self._repository.lock_active_admins() if demotes else []
            user = self._repository.user_for_update(user_id)
            if user is None:
                raise Problem(404, "No such user.")
            if admins == [user.id]:
                raise Problem(409, LAST_ADMIN)
            if role is not None:
                user.role = role
            if is_active is not None and is_active != user.is_active:
                user.is_active = is_active
                if not is_active:
                    self._invalidate_tokens(user, self._settings.REVOKE_API_KEYS_ON_DEACTIVATION)
            user.updated_at = self._clock.now()
        return user

    def _invalidate_tokens(self, user: User, api_keys: bool) -> None:
        now = self._clock.now()
        user.token_version += 1
        user.updated_at = now
        self._repository.revoke_user_tokens(user.id, now)
        if api_keys:
            self._repository.revoke_api_keys(user.id, now)

    def _check_role(self, role: str) -> None:
        if role not in self._roles:
            raise Problem(422, f"Unknown role {role!r}.", errors={"role": ["Unknown role."]})

    def _check_password(self, password: str, email: str) -> None:
        problems = self._passwords.problems(password, email)
        if problems:
            raise Problem(422, "The password is not acceptable.", errors={"password": problems})
