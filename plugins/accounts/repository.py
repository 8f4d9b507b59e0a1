"""The only place the accounts plugin builds queries.

Writes that race other requests are single statements the database decides, so no
check-then-write gap exists: a refresh token is claimed by a conditional UPDATE, a user or a
revoked access token is inserted with ``ON CONFLICT DO NOTHING``, and the active admins are
locked before one of them is demoted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from injector import inject
from sqlalchemy import CursorResult, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from plugins.accounts.models import ApiKey, RefreshToken, RevokedAccessToken, User
from plugins.accounts.roles import ADMIN_ROLE
from powerstrip import Page, PageRequest, fetch_page

# The INSERT of each supported database that can skip a row a unique key already holds.
SkippingInsert = postgresql.Insert | sqlite.Insert
_INSERTS: dict[str, Callable[[type[Any]], SkippingInsert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


# The statements of every authenticated request, built once (SQLAlchemy caches their compiled
# form, but building an expression costs about as much as running it on SQLite); plain columns
# where no model is wanted.
_USERS = User.__table__.c
_REVOKED = RevokedAccessToken.__table__.c
_BEARER_OWNER = select(
    _USERS.id,
    _USERS.role,
    _USERS.is_active,
    _USERS.token_version,
    select(_REVOKED.jti).where(_REVOKED.jti == bindparam("jti")).exists(),
).where(_USERS.id == bindparam("user_id"))

_KEYS = ApiKey.__table__.c
_KEY_AND_OWNER = (
    select(
        _KEYS.id,
        _KEYS.user_id,
        _KEYS.secret_hash,
        _KEYS.scopes,
        _KEYS.last_used_at,
        _KEYS.revoked_at,
        _USERS.role,
        _USERS.is_active,
    )
    .join_from(ApiKey.__table__, User.__table__, _USERS.id == _KEYS.user_id)
    .where(_KEYS.prefix == bindparam("prefix"))
)
_KEY_USED = (
    update(cast(Table, ApiKey.__table__))
    .where(_KEYS.id == bindparam("key_id"))
    .values(last_used_at=bindparam("used_at"))
)


class BearerOwner(NamedTuple):
    """The user behind an access token, as authentication reads it."""

    id: int
    role: str
    is_active: bool
    token_version: int
    token_revoked: bool


class KeyAndOwner(NamedTuple):
    """An API key and its owner, as authentication reads them."""

    id: int
    user_id: int
    secret_hash: str
    scopes: list[str]
    last_used_at: datetime | None
    revoked_at: datetime | None
    owner_role: str
    owner_is_active: bool


class AccountsRepository:
    """Users, refresh tokens, revoked access tokens and API keys in the given session."""

    @inject
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: object) -> None:
        """Stage a new row."""
        self.session.add(row)
        self.session.flush()

    def add_user(self, user: User) -> User | None:
        """Insert ``user``; None when its email is taken, even by a create racing this one.

        The unique index decides (``ON CONFLICT DO NOTHING``), so the transaction stays usable
        and no constraint error reaches the caller.
        """
        values = {
            "email": user.email,
            "password_hash": user.password_hash,
            "role": user.role,
            "is_active": user.is_active,
            "token_version": user.token_version,
            "created_at": user.created_at,
            "updated_at": user.updated_at,
        }
        statement = (
            self._insert(User)
            .values(values)
            .on_conflict_do_nothing(index_elements=[User.email])
            .returning(User)
        )
        return self.session.scalar(statement)

    def user(self, user_id: int) -> User | None:
        """A user by id."""
        return self.session.get(User, user_id)

    def bearer_owner(self, user_id: int, jti: str) -> BearerOwner | None:
        """What authenticating an access token needs of its user, and whether the token was
        logged out: one indexed query, plain columns (no model is built)."""
        row = self.session.execute(_BEARER_OWNER, {"user_id": user_id, "jti": jti}).first()
        return None if row is None else BearerOwner(*row)

    def user_for_update(self, user_id: int) -> User | None:
        """A user by id, read afresh and locked until the transaction ends (PostgreSQL)."""
        return self.session.get(User, user_id, populate_existing=True, with_for_update=True)

    def user_by_email(self, email: str) -> User | None:
        """A user by normalised email."""
        return self.session.scalar(select(User).where(User.email == email))

    def lock_active_admins(self) -> list[int]:
        """The ids of the active admins, locked until the transaction ends.

        A no-op UPDATE rather than ``SELECT ... FOR UPDATE``: it locks the rows on PostgreSQL
        (a racing transaction waits, then sees the rows as that one left them) and takes
        SQLite's write lock, which a plain read would not, so two demotions run one after the
        other on both.
        """
        result = self.session.execute(
            update(User)
            .where(User.role == ADMIN_ROLE, User.is_active.is_(True))
            .values(role=User.role)
            .returning(User.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(result.scalars())

    def users(
        self,
        *,
        email: str | None,
        active: bool | None,
        role: str | None,
        paging: PageRequest,
    ) -> Page[User]:
        """A page of users matching the filters, oldest first."""
        query = select(User)
        if email:
            query = query.where(User.email.contains(email.lower(), autoescape=True))
        if active is not None:
            query = query.where(User.is_active.is_(active))
        if role:
            query = query.where(User.role == role)
        return fetch_page(self.session, query, paging, order=[User.id.asc()])

    def refresh_token(self, token_hash: str) -> RefreshToken | None:
        """A refresh token by the hash of its secret."""
        return self.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )

    def use_refresh_token(self, token_id: int, when: datetime) -> bool:
        """Mark a live refresh token used; False when another request used or revoked it first.

        One conditional UPDATE: of any number of concurrent calls for one token, exactly one
        matches the row (PostgreSQL makes the others wait for its commit and re-check the
        condition; SQLite runs writers one at a time).
        """
        result = self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == token_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=when)
            .execution_options(synchronize_session=False)
        )
        return cast("CursorResult[Any]", result).rowcount == 1

    def revoke_family(self, family: str, when: datetime) -> None:
        """Revoke every live token of a rotation family."""
        self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=when)
        )

    def revoke_user_tokens(self, user_id: int, when: datetime) -> None:
        """Revoke every live refresh token of a user."""
        self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=when)
        )

    def revoke_access_token(self, jti: str, expires_at: datetime) -> None:
        """Record an access token as logged out; already recorded (a racing logout) is fine."""
        self.session.execute(
            self._insert(RevokedAccessToken)
            .values(jti=jti, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=[RevokedAccessToken.jti])
        )

    def api_key_and_owner(self, prefix: str) -> KeyAndOwner | None:
        """An API key by its visible prefix, with what authenticating needs of its owner: one
        indexed query, plain columns (no model is built)."""
        row = self.session.execute(_KEY_AND_OWNER, {"prefix": prefix}).first()
        return None if row is None else KeyAndOwner(*row)

    def api_key_used(self, key_id: int, when: datetime) -> None:
        """Record when an API key was last used."""
        self.session.execute(_KEY_USED, {"key_id": key_id, "used_at": when})

    def api_keys(self, user_id: int) -> Sequence[ApiKey]:
        """A user's API keys, newest first."""
        return self.session.scalars(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc())
        ).all()

    def revoke_api_keys(self, user_id: int, when: datetime) -> None:
        """Revoke every live API key of a user."""
        self.session.execute(
            update(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=when)
        )

    def _insert(self, model: type[Any]) -> SkippingInsert:
        dialect = self.session.get_bind().dialect.name
        insert = _INSERTS.get(dialect)
        if insert is None:  # pragma: no cover - the host supports SQLite and PostgreSQL
            raise NotImplementedError(f"the accounts plugin does not support {dialect}")
        return insert(model)
