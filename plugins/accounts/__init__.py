"""Accounts: users, password login, JWT access tokens with rotating refresh tokens, API keys.

Contributes the ``Authenticator`` that tells the host who is calling (so other plugins learn
it, and ``requires(scope)`` works, without importing anything from here) and the
``Directory`` that tells whether a principal id exists.
"""

from __future__ import annotations

from pathlib import Path

from plugins.accounts.authentication import AccountsAuthenticator
from plugins.accounts.cli import commands
from plugins.accounts.module import AccountsModule
from plugins.accounts.settings import AccountsSettings, AccountsSettingsSchema
from plugins.accounts.signing import development_key
from plugins.accounts.views import ADMIN, SELF, blueprint
from powerstrip import Plugin, PluginContext


def setup(context: PluginContext) -> None:
    """Without ``SIGNING_KEYS`` (development, testing): make sure the instance's generated
    signing key exists, so a folder that cannot hold it stops startup rather than a login."""
    settings = context.settings
    if isinstance(settings, AccountsSettings) and not settings.SIGNING_KEYS:
        development_key(Path(context.app.instance_path))


plugin = Plugin(
    name="accounts",
    version="0.1.0",
    description="Users, password login, access and refresh tokens, API keys, roles and scopes.",
    blueprints=[blueprint],
    modules=[AccountsModule],
    settings=AccountsSettingsSchema,
    commands=commands,
    migrations=Path(__file__).parent / "migrations",
    authenticators=[AccountsAuthenticator],
    setup=setup,
    scopes={
        SELF: "Read one's own account, change one's password, manage one's API keys",
        ADMIN: "Create, list and change users; revoke anyone's API keys",
    },
    grants={"user": [SELF]},
)
