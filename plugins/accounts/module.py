"""Injector bindings of the accounts plugin: it binds the host's Principal per request."""

from __future__ import annotations

import injector
from flask import request as current_request
from flask_injector import request

from app import Clock, Principal
from app.auth import ANONYMOUS, API_KEY_HEADER
from plugins.accounts.passwords import Passwords
from plugins.accounts.service import Authenticator
from plugins.accounts.settings import AccountsSettings
from plugins.accounts.tokens import AccessTokens


class AccountsModule(injector.Module):
    """Passwords and token signing per app; the caller's Principal per request."""

    @injector.singleton
    @injector.provider
    def passwords(self, settings: AccountsSettings) -> Passwords:
        """Argon2id with the library's current parameters."""
        return Passwords(min_length=settings.PASSWORD_MIN_LENGTH)

    @injector.singleton
    @injector.provider
    def access_tokens(self, settings: AccountsSettings, clock: Clock) -> AccessTokens:
        """Signs with the current key, verifies with every configured key."""
        return AccessTokens(settings, clock)

    @request
    @injector.provider
    def principal(self, authenticator: Authenticator) -> Principal:
        """Who sent this request: a bearer access token, an API key, or nobody."""
        authorization = current_request.headers.get("Authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return Principal(problem="Use 'Authorization: Bearer <access token>'.")
            principal, _ = authenticator.bearer(token.strip())
            return principal
        api_key = current_request.headers.get(API_KEY_HEADER)
        if api_key:
            return authenticator.api_key(api_key.strip())
        return ANONYMOUS
