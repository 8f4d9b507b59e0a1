"""The only place the accounts plugin builds queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from injector import inject
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from plugins.accounts.models import ApiKey, RefreshToken, RevokedAccessToken, User
from powerstrip import Page, PageRequest, fetch_page


class AccountsRepository:
    """Users, refresh tokens, revoked access tokens and API keys in the given session."""

    @inject
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: object) -> None:
        """Stage a new row."""
        self.session.add(row)
        self.session.flush()

    def user(self, user_id: int) -> User | None:
        """A user by id."""
        return self.session.get(User, user_id)

    def user_by_email(self, email: str) -> User | None:
        """A user by normalised email."""
        return self.session.scalar(select(User).where(User.email == email))

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

    def access_token_revoked(self, jti: str) -> bool:
        """Whether an access token was logged out."""
        return self.session.get(RevokedAccessToken, jti) is not None

    def api_key_by_prefix(self, prefix: str) -> ApiKey | None:
        """An API key by its visible prefix."""
        return self.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))

    def api_keys(self, user_id: int) -> Sequence[ApiKey]:
        """A user's API keys, newest first."""
        return self.session.scalars(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc())
        ).all()
