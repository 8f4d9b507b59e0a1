"""Authentication, once per request: the host side of the SDK's ``Authenticator`` contract.

A ``before_request`` hook asks the authenticators plugins contributed (in load order) for the
request's principal and keeps the first answer; the ``Principal`` provider only hands that out.
The authenticators' I/O (token and key look-ups) runs here, outside the injector: injector
resolves everything under one process-wide lock, so I/O inside a provider would make the
requests of a worker wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import injector
from flask import Flask, Response, request

from powerstrip.auth import (
    API_KEY_SCHEME,
    BEARER_SCHEME,
    Authenticator,
    Principal,
    remember_principal,
    request_principal,
)
from powerstrip.http import API_KEY_HEADER, current_request, environ_key


def security_schemes(scopes: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The OpenAPI security schemes, describing every scope the enabled plugins declare."""
    listed = "".join(f"\n- `{scope}`: {text}" for scope, text in sorted(scopes.items()))
    described = f"\n\nScopes:{listed}" if listed else ""
    return {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /api/v1/accounts/tokens" + described,
        },
        API_KEY_SCHEME: {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": "An API key for machine clients" + described,
        },
    }


class AuthModule(injector.Module):
    """Binds ``Principal`` to the principal the hook found for the current request."""

    def configure(self, binder: injector.Binder) -> None:
        binder.bind(Principal, to=injector.CallableProvider(request_principal))


def init_app(
    app: Flask, inj: injector.Injector, authenticators: Sequence[type[Authenticator]]
) -> None:
    """Authenticate every request before its view with the plugins' authenticators."""
    if not authenticators:
        return  # every request is anonymous
    # Each authenticator's credential headers by their WSGI environ keys: one set operation
    # tells whether a request sent any (a header lookup by name costs about ten calls).
    keys = [
        (authenticator, frozenset(map(environ_key, authenticator.credentials)))
        for authenticator in authenticators
    ]
    any_credentials = frozenset().union(*(names for _, names in keys))

    def authenticate() -> None:
        sent = current_request().environ.keys()  # a view: isdisjoint walks the smaller side
        if sent.isdisjoint(any_credentials):
            return  # anonymous: no authenticator is even built
        for authenticator, names in keys:
            if sent.isdisjoint(names):
                continue  # no credentials for it: not even built
            # Building it takes the injector's lock briefly; its I/O runs outside.
            principal = inj.get(authenticator).authenticate(current_request())
            if principal is not None:
                remember_principal(principal)
                return

    app.before_request(authenticate)

    def no_store_for_credentials(response: Response) -> Response:
        # An answer to a request that carried credentials is the caller's own: no shared
        # cache may keep it, unless the view chose a Cache-Control of its own.
        if request.environ.keys().isdisjoint(any_credentials):
            return response
        if "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    app.after_request(no_store_for_credentials)
