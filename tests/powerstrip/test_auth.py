"""The SDK's auth contract on its own: ``Caller``, ``Principal``, ``requires`` and the request's
principal, without the accounts plugin (``make mutation`` runs these against mutants)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from powerstrip.auth import (
    ALL_SCOPES,
    ANONYMOUS,
    API_KEY_SCHEME,
    BEARER_SCHEME,
    Caller,
    Principal,
    remember_principal,
    request_principal,
    requires,
)
from powerstrip.http import REQUIRES, marks
from powerstrip.problems import Problem


def test_scheme_names_and_the_wildcard_scope() -> None:
    # OpenAPI documents and the accounts plugin spell these; a rename breaks their clients.
    assert (BEARER_SCHEME, API_KEY_SCHEME, ALL_SCOPES) == ("bearerAuth", "apiKeyAuth", "*")


def test_a_caller_holds_its_scopes_and_the_wildcard_holds_all() -> None:
    caller = Caller("7", "user", frozenset({"tasks:read"}))
    assert caller.has("tasks:read")
    assert not caller.has("tasks:write")
    assert Caller("7", "user", frozenset({"*"})).has("tasks:write")
    assert not Caller("7", "user").has("tasks:read")
    assert Caller("7", "user").credential is None


def test_principal_of_builds_an_authenticated_caller() -> None:
    principal = Principal.of("7", "api_key", {"a", "b"}, credential="key-1")
    assert principal.caller == Caller("7", "api_key", frozenset({"a", "b"}), "key-1")
    assert isinstance(principal.caller.scopes, frozenset)
    assert principal.problem is None
    assert principal.authenticated
    assert (principal.kind, principal.subject) == ("api_key", "7")


def test_principal_of_defaults_to_a_user_without_scopes() -> None:
    assert Principal.of("7") == Principal(Caller("7", "user", frozenset(), None))


def test_anonymous_and_refused_principals() -> None:
    for principal in (ANONYMOUS, Principal(), Principal.refused("The token has expired.")):
        assert principal.caller is None
        assert not principal.authenticated
        assert (principal.kind, principal.subject) == ("anonymous", None)
        assert not principal.has("*")
    assert Principal.refused("The token has expired.").problem == "The token has expired."
    assert ANONYMOUS.problem is None


def test_principal_has_asks_its_caller() -> None:
    principal = Principal.of("7", scopes={"tasks:read"})
    assert principal.has("tasks:read")
    assert not principal.has("tasks:write")


def test_require_returns_the_caller_holding_every_scope() -> None:
    principal = Principal.of("7", scopes={"a", "b"})
    assert principal.require() is principal.caller
    assert principal.require("a", "b") is principal.caller


def test_require_without_a_caller_is_a_401_with_a_challenge() -> None:
    with pytest.raises(Problem) as caught:
        ANONYMOUS.require()
    assert caught.value.code == 401
    assert caught.value.description == (
        "Authentication is required: send a bearer token or an API key."
    )
    assert caught.value.extra_headers == {"WWW-Authenticate": 'Bearer realm="powerstrip"'}


def test_require_after_refused_credentials_says_why() -> None:
    with pytest.raises(Problem) as caught:
        Principal.refused("The access token has expired.").require("a")
    assert (caught.value.code, caught.value.description) == (401, "The access token has expired.")
    assert caught.value.extra_headers == {"WWW-Authenticate": 'Bearer realm="powerstrip"'}


def test_require_a_missing_scope_is_a_403_naming_the_missing_ones_sorted() -> None:
    with pytest.raises(Problem) as caught:
        Principal.of("7", scopes={"b"}).require("d", "b", "a")
    assert caught.value.code == 403
    assert caught.value.description == "This requires the scope(s): a, d."
    assert caught.value.extra_headers == {}


def test_the_request_principal_is_anonymous_outside_a_request() -> None:
    assert request_principal() is ANONYMOUS


def test_the_request_principal_is_remembered_for_its_request_only() -> None:
    app = Flask(__name__)
    principal = Principal.of("7")
    with app.test_request_context("/"):
        assert request_principal() is ANONYMOUS
        remember_principal(principal)
        assert request_principal() is principal
    with app.test_request_context("/"):
        assert request_principal() is ANONYMOUS


def test_requires_checks_the_principal_before_the_view() -> None:
    calls: list[tuple[Any, ...]] = []

    @requires("a", "b")
    def view(*args: Any, **kwargs: Any) -> str:
        """The view's docstring."""
        calls.append((args, kwargs))
        return "done"

    app = Flask(__name__)
    with app.test_request_context("/"):
        with pytest.raises(Problem) as caught:
            view()
        assert caught.value.code == 401
        remember_principal(Principal.of("7", scopes={"a"}))
        with pytest.raises(Problem) as caught:
            view()
        assert caught.value.description == "This requires the scope(s): b."
        assert calls == []
    with app.test_request_context("/"):
        remember_principal(Principal.of("7", scopes={"a", "b"}))
        assert view(1, key="value") == "done"
    assert calls == [((1,), {"key": "value"})]
    assert view.__name__ == "view"
    assert view.__doc__ == "The view's docstring."


def test_requires_marks_and_documents_the_view() -> None:
    @requires("a", "b")
    def view() -> None:
        """A view."""

    assert marks(view)[REQUIRES] == ("a", "b")
    documented = view._apidoc["manual_doc"]  # type: ignore[attr-defined]
    assert documented == {
        "security": [{"bearerAuth": ["a", "b"]}, {"apiKeyAuth": ["a", "b"]}],
        "responses": {"401": "UNAUTHORIZED", "403": "FORBIDDEN"},
    }
