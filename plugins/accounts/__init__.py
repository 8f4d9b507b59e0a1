"""Accounts: users, password login, JWT access tokens with rotating refresh tokens, API keys.

Binds the host's ``Principal`` for every request, so other plugins learn who is calling (and
``requires(scope)`` works) without importing anything from here.
"""

from __future__ import annotations

from pathlib import Path

from app import Plugin
from plugins.accounts.cli import commands
from plugins.accounts.module import AccountsModule
from plugins.accounts.settings import AccountsSettingsSchema
from plugins.accounts.views import blueprint

plugin = Plugin(
    name="accounts",
    version="0.1.0",
    description="Users, password login, access and refresh tokens, API keys, roles and scopes.",
    blueprints=[blueprint],
    modules=[AccountsModule],
    settings=AccountsSettingsSchema,
    commands=commands,
    migrations=Path(__file__).parent / "migrations",
)
