"""``flask accounts ...``: create an admin, API keys, deactivate users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from app import Clock, EventBus, Principal, Problem, UnitOfWork, injected
from app.db import Database
from plugins.accounts.passwords import Passwords
from plugins.accounts.repository import AccountsRepository
from plugins.accounts.service import ApiKeyService, UserService, normalise_email
from plugins.accounts.settings import AccountsSettings

commands = click.Group("accounts", help="Users and API keys.")


@contextmanager
def _services(
    database: Database,
    events: EventBus,
    passwords: Passwords,
    settings: AccountsSettings,
    clock: Clock,
) -> Iterator[tuple[UserService, ApiKeyService, AccountsRepository]]:
    # Commands run outside any request, so they open (and close) a session of their own.
    session = database.sessions()
    try:
        repository = AccountsRepository(session)
        uow = UnitOfWork(session, events)
        users = UserService(repository, uow, passwords, settings, clock)
        yield users, ApiKeyService(repository, uow, users, clock), repository
    except Problem as problem:
        errors = getattr(problem, "errors", None) or {}
        details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        raise click.ClickException(f"{problem.description} {details}".strip()) from None
    finally:
        session.close()


@commands.command("create-admin")
@click.option("--email", prompt=True, help="The admin's email.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@injected
def create_admin(
    email: str,
    password: str,
    database: Database,
    events: EventBus,
    passwords: Passwords,
    settings: AccountsSettings,
    clock: Clock,
) -> None:
    """Create an administrator (asks for what is not given; the password is not echoed)."""
    with _services(database, events, passwords, settings, clock) as (users, _, _):
        user = users.create(email, password, role="admin")
    click.echo(f"created admin {user.email} (id {user.id})")


@commands.command("create-api-key")
@click.option("--email", required=True, help="The key's owner.")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--scope", "scopes", multiple=True, help="A scope to grant (repeat for more).")
@injected
def create_api_key(
    email: str,
    name: str,
    scopes: tuple[str, ...],
    database: Database,
    events: EventBus,
    passwords: Passwords,
    settings: AccountsSettings,
    clock: Clock,
) -> None:
    """Create an API key for a user and print it (it is shown only this once)."""
    with _services(database, events, passwords, settings, clock) as (users, keys, repository):
        owner = repository.user_by_email(normalise_email(email))
        if owner is None or not owner.is_active:
            raise Problem(404, f"No active user {email}.")
        principal = Principal(kind="user", subject=str(owner.id), scopes=users.scopes_of(owner))
        value, key = keys.create(principal, name, scopes)
    click.echo(f"API key {key.prefix} for {owner.email}: {value}")


@commands.command("deactivate")
@click.option("--email", required=True, help="The user to deactivate.")
@injected
def deactivate(
    email: str,
    database: Database,
    events: EventBus,
    passwords: Passwords,
    settings: AccountsSettings,
    clock: Clock,
) -> None:
    """Deactivate a user: logins fail and every token of the user dies."""
    with _services(database, events, passwords, settings, clock) as (users, _, repository):
        user = repository.user_by_email(normalise_email(email))
        if user is None:
            raise Problem(404, f"No user {email}.")
        users.update(user.id, role=None, is_active=False)
    click.echo(f"deactivated {user.email}")
