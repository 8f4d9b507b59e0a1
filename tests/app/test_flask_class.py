"""The host's Flask class: Flask's behaviour, with per-function answers kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import flask.app
import pytest
from flask import Flask, Response
from flask.sessions import NullSession
from werkzeug.wrappers import Response as WerkzeugResponse

from app.factory import PowerstripFlask, PowerstripResponse
from tests.spies import record_calls


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    return record_calls(monkeypatch, flask.app, "iscoroutinefunction")


def test_ensure_sync_asks_once_per_function(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(app, PowerstripFlask)
    asked = _counting(monkeypatch)

    def view() -> str:
        return "ok"

    async def coroutine() -> str:
        return "ok"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view
    for _ in range(2):  # Flask's refusal (no asgiref here) is not kept: it is raised each time
        with pytest.raises(RuntimeError, match="async"):
            app.ensure_sync(coroutine)
    assert asked == [(view,), (coroutine,), (coroutine,)]


def test_ensure_sync_keeps_at_most_synced_answers(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = len(app._synced)  # type: ignore[attr-defined]
    monkeypatch.setattr(app, "SYNCED", full)
    asked = _counting(monkeypatch)

    def view() -> str:
        return "ok"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view
    assert asked == [(view,), (view,)]  # not kept: asked each time, as Flask does


def test_no_cookie_session_is_read_or_written(app: Flask) -> None:
    """The API keeps no cookie session: a cookie sent is not read, and a view writing to
    ``flask.session`` fails instead of setting one."""

    @app.get("/test-session")
    def read() -> str:
        assert isinstance(flask.session, NullSession)
        assert dict(flask.session) == {}
        with pytest.raises(RuntimeError, match="session is unavailable"):
            flask.session["user"] = "someone"
        return "ok"

    client = app.test_client()
    client.set_cookie("session", "eyJ1c2VyIjoiYWRtaW4ifQ.forged.signature")
    answer = client.get("/test-session")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert "Set-Cookie" not in answer.headers


def test_the_hosts_own_hooks_are_fused(app: Flask) -> None:
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        [fused] = hooks[None]
        assert len(fused.hooks) > 1  # type: ignore[attr-defined]


def _hooked(app: Flask, fuse: bool) -> list[str]:
    """Three hooks of each kind, a route, the request's events (what ran, in order), then a
    fourth hook of each kind registered after fusing (``fuse``)."""
    events: list[str] = []

    def before(name: str) -> Callable[[], Any]:
        def hook() -> Any:
            events.append(name)
            if flask.request.args.get("fail") == name:
                raise RuntimeError(name)
            return "answered early" if flask.request.args.get("answer") == name else None

        return hook

    def after(name: str) -> Callable[[Response], Response]:
        def hook(response: Response) -> Response:
            events.append(name)
            if flask.request.args.get("fail") == name:
                raise RuntimeError(name)
            response.headers.add("X-Order", name)
            return response

        return hook

    def teardown(name: str) -> Callable[[BaseException | None], None]:
        def hook(error: BaseException | None) -> None:
            events.append(f"{name}:{type(error).__name__}")

        return hook

    # The route in a blueprint with hooks of its own, which fusing leaves to Flask.
    blueprint = flask.Blueprint("hooked", __name__)

    @blueprint.get("/hooked")
    def view() -> str:
        events.append("view")
        return "ok"

    blueprint.before_request(before("blueprint-before"))
    blueprint.after_request(after("blueprint-after"))
    blueprint.teardown_request(teardown("blueprint-teardown"))
    app.register_blueprint(blueprint)
    for n in (1, 2, 3):
        app.before_request(before(f"b{n}"))
        app.after_request(after(f"a{n}"))
        app.teardown_request(teardown(f"t{n}"))
    if fuse:
        assert isinstance(app, PowerstripFlask)
        app.fuse_request_hooks()
    app.before_request(before("b4"))
    app.after_request(after("a4"))
    app.teardown_request(teardown("t4"))
    return events


@pytest.mark.parametrize(
    "query", ["", "answer=b2", "answer=b4", "fail=b2", "fail=a2", "answer=blueprint-before"]
)
def test_fused_hooks_run_as_flasks_own(query: str) -> None:
    """The same requests on Flask and on PowerstripFlask with its hooks fused: the same
    hooks run in the same order, with the same answer."""
    seen = []
    for app, fuse in ((Flask("plain"), False), (PowerstripFlask("fused"), True)):
        events = _hooked(app, fuse)
        answer = app.test_client().get(f"/hooked?{query}")
        seen.append((events, answer.status_code, answer.headers.getlist("X-Order")))
    assert seen[0] == seen[1]
    assert seen[0][0][0] == "b1"  # and the hooks ran at all


def _answer(
    status: int,
    headers: dict[str, str],
    body: bytes | Callable[[], Any] = b'{"ok":true}',
    *,
    length: bool = True,
) -> Response:
    response = PowerstripResponse(body() if callable(body) else body, status=status)
    if not length:
        del response.headers["Content-Length"]
    for name, value in headers.items():
        for one in value.split("|"):  # "a|b": the header twice
            response.headers.add(name, one)
    return response


_ENVIRON = {
    "REQUEST_METHOD": "GET",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "wsgi.url_scheme": "http",
    "PATH_INFO": "/",
    "HTTP_HOST": "localhost",
}


def _streamed() -> Any:
    yield b"part"


@pytest.mark.parametrize(
    ("status", "headers", "method", "length"),
    [
        (200, {}, "GET", True),
        (200, {}, "HEAD", True),
        (201, {"Location": "/api/v1/tasks/projects/1/tasks/2"}, "POST", True),
        (201, {"Location": "/api/v1/tasks?x=1&y=%20z#f"}, "POST", True),
        (201, {"Location": "/pfad/\u00e4"}, "POST", True),  # iri_to_uri quotes it
        (201, {"Location": "/a b"}, "POST", True),
        (201, {"Location": "//other.example/x"}, "POST", True),
        (201, {"Location": "https://other.example/x"}, "POST", True),
        (200, {"Content-Location": "/a/\u00e4"}, "GET", True),
        (200, {"Location": "/a", "Content-Location": "/b"}, "GET", True),
        (200, {"Location": "/a|/b"}, "GET", True),  # werkzeug keeps one
        (200, {"location": "/a"}, "GET", True),  # werkzeug writes "Location"
        (200, {}, "GET", False),  # no Content-Length: werkzeug works it out
        (204, {}, "DELETE", True),
        (304, {"ETag": '"1"', "Content-Type": "application/json"}, "GET", True),
        (101, {"Upgrade": "websocket"}, "GET", True),
        (429, {"Retry-After": "3"}, "GET", True),
    ],
)
def test_answers_reach_the_server_as_werkzeug_hands_them(
    status: int, headers: dict[str, str], method: str, length: bool
) -> None:
    """The response class skips werkzeug's copy of the headers only where the copy would be
    the same: its status, headers and body match werkzeug's own in every case here."""
    environ = _ENVIRON | {"REQUEST_METHOD": method}
    ours = _answer(status, headers, length=length).get_wsgi_response(environ)
    theirs = Response.get_wsgi_response(_answer(status, headers, length=length), environ)
    assert ours[1:] == theirs[1:]
    assert b"".join(ours[0]) == b"".join(theirs[0])


def _headers_copied(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    return record_calls(monkeypatch, Response, "get_wsgi_headers")


@pytest.mark.parametrize(
    ("answer", "copied"),
    [
        (lambda: _answer(200, {}), False),
        (lambda: _answer(201, {"Location": "/api/v1/x/1"}), False),
        (lambda: _answer(200, {}, _streamed, length=False), True),
        (lambda: _answer(201, {"Location": "/a b"}), True),
        (lambda: _answer(204, {}), True),
    ],
)
def test_werkzeugs_copy_of_the_headers_is_skipped_only_where_it_changes_nothing(
    answer: Callable[[], Response], copied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _headers_copied(monkeypatch)
    answer().get_wsgi_response(_ENVIRON)
    assert bool(calls) is copied


def test_a_location_made_absolute_goes_werkzeugs_way() -> None:
    environ = _ENVIRON | {"PATH_INFO": "/x/"}
    corrected = _answer(302, {"Location": "/y"})  # a plain path: only the setting says no
    corrected.autocorrect_location_header = True
    assert dict(corrected.get_wsgi_response(environ)[2])["Location"] == "http://localhost/y"


def test_the_app_answers_with_its_response_class(app: Flask) -> None:
    with app.test_request_context():
        assert isinstance(app.make_response({"a": 1}), PowerstripResponse)


class _OwnAnswer(Response):
    """A plugin's own response class, with an override of its own."""

    default_mimetype = "text/csv"

    def get_wsgi_response(self, environ: Any) -> Any:
        app_iter, status, headers = super().get_wsgi_response(environ)
        return app_iter, status, [*headers, ("X-Own", "1")]


def test_a_views_own_response_class_is_kept(app: Flask) -> None:
    """Flask keeps a view's ``flask.Response`` of any class: werkzeug's ``force_type`` would
    make it the app's response class, and the view's overrides would be lost."""

    @app.route("/probe/own")
    def own() -> Response:
        return _OwnAnswer("a,b")

    @app.route("/probe/werkzeugs")
    def werkzeugs() -> Any:
        return WerkzeugResponse("w")

    answer = app.test_client().get("/probe/own")
    assert answer.headers["X-Own"] == "1"
    assert answer.mimetype == "text/csv"
    with app.test_request_context():
        converted = app.make_response(WerkzeugResponse("w"))
    assert isinstance(converted, PowerstripResponse)  # werkzeug's own: made the app's, as before
    assert app.test_client().get("/probe/werkzeugs").get_data() == b"w"
