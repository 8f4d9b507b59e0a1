"""The app's JSON answers: orjson's bytes, Flask's values, Flask's fallback for the rest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from app.jsonio import JSONProvider


@dataclass
class Point:
    x: int
    label: str


def _flask_body(app: Flask, value: Any) -> bytes:
    """What Flask's own provider answers for ``value`` (keys unsorted, as the app's)."""
    provider = DefaultJSONProvider(app)
    provider.sort_keys = False
    return provider.response(value).get_data()


VALUES = [
    {"id": 1, "title": "Task", "labels": ["a", "b"], "done": False, "due": None, "score": 1.5},
    [1, 2, 3],
    {"when": datetime(2026, 11, 28, 21, 0, tzinfo=UTC), "day": date(2026, 11, 28)},
    {"point": Point(1, "p"), "id": UUID(int=7), "amount": Decimal("1.10")},
    {"b": 1, "a": {"z": [], "y": {}}},
]


@pytest.mark.parametrize("value", VALUES, ids=["task", "list", "dates", "objects", "order"])
def test_answers_are_flasks_bytes(app: Flask, value: Any) -> None:
    assert isinstance(app.json, JSONProvider)
    with app.app_context():
        answer = app.json.response(value)
        assert answer.mimetype == "application/json"
        assert answer.get_data() == _flask_body(app, value)


def test_non_ascii_is_utf_8_with_the_same_value(app: Flask) -> None:
    value = {"title": "Grüße, 日本, 🙂"}
    with app.app_context():
        body = app.json.response(value).get_data()
    assert "Grüße, 日本, 🙂".encode() in body
    assert json.loads(body) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"big": 2**70}, {"big": 2**70}),  # orjson writes 64-bit integers only
        ({1: "one"}, {"1": "one"}),  # orjson needs string keys
    ],
    ids=["integer-beyond-64-bits", "integer-key"],
)
def test_what_orjson_refuses_is_written_by_flask(app: Flask, value: Any, expected: Any) -> None:
    with app.app_context():
        answer = app.json.response(value)
    assert answer.get_data() == _flask_body(app, value)
    assert json.loads(answer.get_data()) == expected


def test_what_neither_writes_still_raises(app: Flask) -> None:
    with app.app_context(), pytest.raises(TypeError):
        app.json.response({"thing": object()})


def test_debug_answers_are_indented_as_flasks(app: Flask) -> None:
    app.debug = True
    value = {"a": [1, 2]}
    with app.app_context():
        assert app.json.response(value).get_data() == _flask_body(app, value)
        assert b'\n  "a"' in app.json.response(value).get_data()
