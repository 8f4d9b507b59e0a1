"""The host's Flask class: Flask's behaviour, with per-function answers kept."""

from __future__ import annotations

from typing import Any

import flask
import flask.app
import pytest
from flask import Flask
from flask.sessions import NullSession

from app.factory import PowerstripFlask
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
