"""The host's Flask class: Flask's behaviour, with per-function answers kept."""

from __future__ import annotations

from typing import Any

import flask.app
import pytest
from flask import Flask

from app.factory import PowerstripFlask


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    asked: list[Any] = []
    original = flask.app.iscoroutinefunction

    def counting(function: Any) -> bool:
        asked.append(function)
        return original(function)

    monkeypatch.setattr(flask.app, "iscoroutinefunction", counting)
    return asked


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
    assert asked == [view, coroutine, coroutine]


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
    assert asked == [view, view]  # not kept: asked each time, as Flask does
