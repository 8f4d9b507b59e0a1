"""The host's authentication hook and security schemes on a bare Flask app, fast enough for
``make mutation`` to run them against every mutant of app/auth.py."""

from __future__ import annotations

from typing import ClassVar

import injector
from flask import Flask, Request, Response

from app.auth import AuthModule, init_app, security_schemes
from powerstrip.auth import ANONYMOUS, Authenticator, Principal, request_principal


class _Built:
    """Which authenticators the injector built, and the requests they saw."""

    def __init__(self) -> None:
        self.names: list[str] = []


class _First:
    credentials: ClassVar[tuple[str, ...]] = ("X-First", "X-Also-First")

    @injector.inject
    def __init__(self, built: _Built) -> None:
        built.names.append("first")

    def authenticate(self, request: Request) -> Principal | None:
        token = request.headers.get("X-First") or request.headers.get("X-Also-First")
        return None if token == "not-mine" else Principal.of(f"first-{token}")


class _Second:
    credentials: ClassVar[tuple[str, ...]] = ("X-Second", "X-First")

    @injector.inject
    def __init__(self, built: _Built) -> None:
        built.names.append("second")

    def authenticate(self, request: Request) -> Principal | None:
        return (
            Principal.of("second")
            if "X-First" in request.headers or "X-Second" in request.headers
            else None
        )


def _app(*authenticators: type[Authenticator]) -> tuple[Flask, _Built]:
    built = _Built()
    app = Flask(__name__)
    inj = injector.Injector([AuthModule(), lambda binder: binder.bind(_Built, to=built)])

    @app.get("/who")
    def who() -> dict[str, str | None]:
        principal = inj.get(Principal)
        return {"subject": principal.subject, "kind": principal.kind}

    @app.get("/cached")
    def cached() -> Response:
        return Response("x", headers={"Cache-Control": "max-age=60"})

    init_app(app, inj, list(authenticators))
    return app, built


def test_the_first_authenticator_that_answers_wins() -> None:
    app, built = _app(_First, _Second)
    answer = app.test_client().get("/who", headers={"X-First": "a"}).get_json()
    assert answer == {"subject": "first-a", "kind": "user"}
    assert built.names == ["first"]


def test_any_of_its_credential_headers_builds_an_authenticator() -> None:
    app, built = _app(_First, _Second)
    answer = app.test_client().get("/who", headers={"X-Also-First": "b"}).get_json()
    assert answer["subject"] == "first-b"
    assert built.names == ["first"]


def test_an_authenticator_answering_none_passes_to_the_next() -> None:
    app, built = _app(_First, _Second)
    answer = app.test_client().get("/who", headers={"X-First": "not-mine"}).get_json()
    assert answer["subject"] == "second"
    assert built.names == ["first", "second"]


def test_an_authenticator_without_its_headers_is_skipped() -> None:
    app, built = _app(_First, _Second)
    answer = app.test_client().get("/who", headers={"X-Second": "c"}).get_json()
    assert answer["subject"] == "second"
    assert built.names == ["second"]


def test_no_answer_leaves_the_request_anonymous() -> None:
    app, built = _app(_First)
    client = app.test_client()
    assert client.get("/who", headers={"X-First": "not-mine"}).get_json() == {
        "subject": None,
        "kind": "anonymous",
    }
    assert client.get("/who").get_json()["kind"] == "anonymous"
    assert built.names == ["first"]


def test_without_authenticators_no_hook_is_installed() -> None:
    app, _ = _app()
    assert app.before_request_funcs == {}
    assert app.after_request_funcs == {}
    response = app.test_client().get("/who", headers={"Authorization": "Bearer x"})
    assert response.get_json()["kind"] == "anonymous"
    assert "Cache-Control" not in response.headers


def test_answers_to_credentialed_requests_are_not_stored() -> None:
    app, _ = _app(_First, _Second)
    client = app.test_client()
    assert client.get("/who", headers={"X-Second": "c"}).headers["Cache-Control"] == "no-store"
    assert client.get("/who", headers={"X-First": "not-mine"}).headers["Cache-Control"] == (
        "no-store"
    )
    assert "Cache-Control" not in client.get("/who").headers
    assert "Cache-Control" not in client.get("/who", headers={"X-Other": "d"}).headers
    cached = client.get("/cached", headers={"X-First": "a"})
    assert cached.headers["Cache-Control"] == "max-age=60"


def test_the_principal_provider_only_hands_out_the_requests_principal() -> None:
    inj = injector.Injector([AuthModule()])
    assert inj.get(Principal) is ANONYMOUS
    assert request_principal() is ANONYMOUS


def test_security_schemes_list_the_scopes_sorted() -> None:
    schemes = security_schemes({"b:write": "Write b", "a:read": "Read a"})
    listed = "\n\nScopes:\n- `a:read`: Read a\n- `b:write`: Write b"
    assert schemes == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /api/v1/accounts/tokens" + listed,
        },
        "apiKeyAuth": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key for machine clients" + listed,
        },
    }


def test_security_schemes_without_scopes_say_nothing_of_them() -> None:
    schemes = security_schemes({})
    assert schemes["bearerAuth"]["description"] == (
        "An access token from POST /api/v1/accounts/tokens"
    )
    assert schemes["apiKeyAuth"]["description"] == "An API key for machine clients"
