"""Injector bindings of the accounts plugin (providers build objects; none does I/O)."""

from __future__ import annotations

from pathlib import Path

import injector
from flask import Flask

from plugins.accounts.authentication import AccountsAuthenticator, AccountsDirectory, CurrentLogin
from plugins.accounts.lookups import OwnerLookups
from plugins.accounts.passwords import Passwords
from plugins.accounts.roles import RoleScopes
from plugins.accounts.settings import AccountsSettings
from plugins.accounts.signing import SigningKeys
from plugins.accounts.tokens import AccessTokens
from powerstrip import Clock, Directory, PluginRegistry, request_scope


class AccountsModule(injector.Module):
    """Passwords, token signing and the role table per app; who is calling per request."""

    def configure(self, binder: injector.Binder) -> None:
        binder.bind(AccountsAuthenticator, scope=request_scope)
        binder.bind(CurrentLogin, scope=request_scope)
        binder.bind(Directory, to=AccountsDirectory, scope=request_scope)  # type: ignore[type-abstract]

    @injector.singleton
    @injector.provider
    def passwords(self, settings: AccountsSettings) -> Passwords:
        """Argon2id with the library's current parameters."""
        return Passwords(min_length=settings.PASSWORD_MIN_LENGTH)

    @injector.singleton
    @injector.provider
    def signing_keys(self, settings: AccountsSettings, app: Flask) -> SigningKeys:
        """The configured keys, or the instance folder's development key (read on first use)."""
        return SigningKeys(settings, Path(app.instance_path))

    @injector.singleton
    @injector.provider
    def access_tokens(
        self, settings: AccountsSettings, clock: Clock, keys: SigningKeys
    ) -> AccessTokens:
        """Signs with the current key, verifies with every configured key."""
        return AccessTokens(settings, clock, keys)

    @injector.singleton
    @injector.provider
    def owner_lookups(self, settings: AccountsSettings) -> OwnerLookups:
        """The worker's kept owner look-ups (``PRINCIPAL_CACHE_SECONDS``; 0: none kept)."""
        return OwnerLookups(settings.PRINCIPAL_CACHE_SECONDS)

    @injector.singleton
    @injector.provider
    def role_scopes(self, settings: AccountsSettings, registry: PluginRegistry) -> RoleScopes:
        """The operator's ROLE_SCOPES, or every enabled plugin's default grants."""
        return RoleScopes.build(settings, registry)
