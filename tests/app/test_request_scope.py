"""The request scope: one object of each request-scoped binding per request (or command),
kept per request context, without flask-injector's hooks on every request."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import flask_injector
from flask import Flask, Response, copy_current_request_context
from sqlalchemy.orm import Session

from app.composition import RequestScope
from powerstrip import UnitOfWork
from powerstrip.cli import INJECTOR
from tests.conftest import AppFactory

THREADS = 4


def hooks(app: Flask) -> list[Callable[..., Any]]:
    """Every before-request and teardown hook of the app, those behind a fused one too."""
    found: list[Callable[..., Any]] = []
    for registry in (app.before_request_funcs, app.teardown_request_funcs):
        for functions in registry.values():
            for function in functions:
                found.extend(getattr(function, "hooks", (function,)))
    return found


def test_flask_injectors_scope_is_this_one_and_its_per_request_hooks_are_gone(app: Flask) -> None:
    inj = app.extensions[INJECTOR]
    assert type(inj.get(flask_injector.RequestScope)) is RequestScope
    assert hooks(app)  # the host's own are there
    assert [f for f in hooks(app) if f.__module__ == flask_injector.__name__] == []


def test_one_object_per_request_and_a_new_one_for_every_request(app: Flask) -> None:
    """Requests run at once in threads (all inside their request behind a barrier): each has
    its own objects, the same however often asked for within it."""
    inj = app.extensions[INJECTOR]
    barrier = threading.Barrier(THREADS, timeout=30)
    seen: list[tuple[object, ...]] = []

    @app.get("/scope-probe")
    def probe() -> str:
        first = (inj.get(UnitOfWork), inj.get(Session))
        barrier.wait()  # every request holds its objects now
        seen.append((*first, inj.get(UnitOfWork), inj.get(Session)))
        return ""

    def call() -> None:
        assert app.test_client().get("/scope-probe").status_code == 200

    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(seen) == THREADS
    for uow, session, uow_again, session_again in seen:
        assert uow_again is uow
        assert session_again is session
    assert len({id(entry[0]) for entry in seen}) == THREADS
    assert len({id(entry[1]) for entry in seen}) == THREADS


def test_the_view_and_the_hooks_after_it_share_the_requests_objects(app: Flask) -> None:
    inj = app.extensions[INJECTOR]
    seen: dict[str, object] = {}

    @app.get("/scope-probe")
    def probe() -> str:
        seen["view"] = inj.get(UnitOfWork)
        return ""

    @app.after_request
    def after(response: Response) -> Response:
        seen["after"] = inj.get(UnitOfWork)
        return response

    @app.teardown_request
    def teardown(_error: BaseException | None) -> None:
        seen["teardown"] = inj.get(UnitOfWork)

    assert app.test_client().get("/scope-probe").status_code == 200
    assert seen["view"] is seen["after"] is seen["teardown"]


def test_a_copied_request_context_in_a_thread_has_objects_of_its_own(app: Flask) -> None:
    """A session is never shared by two threads (flask-injector's scope was empty there)."""
    inj = app.extensions[INJECTOR]
    seen: dict[str, object] = {}

    @app.get("/scope-probe")
    def probe() -> str:
        seen["request"] = inj.get(Session)

        @copy_current_request_context
        def in_thread() -> None:
            seen["thread"] = inj.get(Session)
            seen["thread again"] = inj.get(Session)

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(timeout=60)
        seen["request again"] = inj.get(Session)
        return ""

    assert app.test_client().get("/scope-probe").status_code == 200
    assert seen["thread"] is seen["thread again"]
    assert seen["thread"] is not seen["request"]
    assert seen["request again"] is seen["request"]


def test_two_apps_in_one_request_context_keep_their_own_objects(make_app: AppFactory) -> None:
    first, second = make_app(), make_app()
    with first.test_request_context():
        mine = first.extensions[INJECTOR].get(Session)
        theirs = second.extensions[INJECTOR].get(Session)
        assert mine is not theirs
        assert mine.get_bind() is first.extensions["powerstrip.database"].engine
        assert theirs.get_bind() is second.extensions["powerstrip.database"].engine


def test_prepare_and_cleanup_start_and_end_a_scope_as_commands_and_tests_do(app: Flask) -> None:
    inj = app.extensions[INJECTOR]
    scope = inj.get(flask_injector.RequestScope)
    with app.test_request_context():
        first = inj.get(UnitOfWork)
        scope.prepare()
        fresh = inj.get(UnitOfWork)
        assert fresh is not first
        assert inj.get(UnitOfWork) is fresh
        scope.cleanup()
        assert inj.get(UnitOfWork) is not fresh


def test_a_nested_request_context_has_a_scope_of_its_own(app: Flask) -> None:
    inj = app.extensions[INJECTOR]
    with app.test_request_context():
        outer = inj.get(UnitOfWork)
        with app.test_request_context():
            assert inj.get(UnitOfWork) is not outer
        assert inj.get(UnitOfWork) is outer


def test_outside_a_request_there_is_no_request_scope(app: Flask) -> None:
    """In a thread of its own (pytest-flask keeps a request context around each test)."""
    inj = app.extensions[INJECTOR]
    raised: list[BaseException] = []

    def outside() -> None:
        with app.app_context():
            try:
                inj.get(UnitOfWork)
            except RuntimeError as exc:
                raised.append(exc)
            inj.get(flask_injector.RequestScope).cleanup()  # nothing to end: no error

    thread = threading.Thread(target=outside)
    thread.start()
    thread.join(timeout=60)
    assert len(raised) == 1
    assert "request context" in str(raised[0])


def test_a_requests_objects_go_with_it_without_waiting_for_the_garbage_collector(
    app: Flask,
) -> None:
    """The scope's mapping holds a request context weakly: reference counting alone lets each
    go (with its objects) when its request ends."""
    inj = app.extensions[INJECTOR]
    scopes = inj.get(flask_injector.RequestScope)._scopes

    @app.get("/scope-probe")
    def probe() -> str:
        inj.get(UnitOfWork)
        return ""

    client = app.test_client()
    gc.disable()
    try:
        for _ in range(50):
            assert client.get("/scope-probe").status_code == 200
        assert len(scopes) <= 1  # the last request's, which the test client may still hold
    finally:
        gc.enable()
