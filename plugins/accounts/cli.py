"""``flask accounts ...``: create an admin, API keys, deactivate users.

Each command gets the services the views use (``@injected``) and runs as one unit of work.
"""

from __future__ import annotations

import click

from plugins.accounts.api_keys import ApiKeyService
from plugins.accounts.users import UserService
from powerstrip import injected

commands = click.Group("accounts", help="Users and API keys.")


@commands.command("create-admin")
@click.option("--email", prompt=True, help="The admin's email.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@injected
def create_admin(email: str, password: str, users: UserService) -> None:
    """Create an administrator (asks for what is not given; the password is not echoed)."""
    user = users.create(email, password, role="admin")
    click.echo(f"created admin {user.email} (id {user.id})")


@commands.command("create-api-key")
@click.option("--email", required=True, help="The key's owner.")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--scope", "scopes", multiple=True, help="A scope to grant (repeat for more).")
@injected
def create_api_key(email: str, name: str, scopes: tuple[str, ...], keys: ApiKeyService) -> None:
    """Create an API key for a user and print it (it is shown only this once)."""
    value, key, owner = keys.create_for(email, name, scopes)
    click.echo(f"API key {key.prefix} for {owner.email}: {value}")


@commands.command("deactivate")
@click.option("--email", required=True, help="The user to deactivate.")
@injected
def deactivate(email: str, users: UserService) -> None:
    """Deactivate a user: logins fail and every token of the user dies."""
    user = users.by_email(email)
    users.update(user.id, role=None, is_active=False)
    click.echo(f"deactivated {user.email}")
