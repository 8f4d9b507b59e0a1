"""The conformance suite's parts: the values it sends and the promises it checks.

The suite as a whole runs in tests/powerstrip/test_testing.py (on a broken plugin) and in
tests/plugins/test_conformance.py (on the first-party plugins).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest

from powerstrip.testing import _conformance as conformance
from powerstrip.testing._conformance import ConformanceReport, _Operation, _Schemas

if TYPE_CHECKING:
    from flask import Flask

    from powerstrip import Plugin

SPEC: dict[str, Any] = {
    "components": {
        "schemas": {
            "Note": {
                "type": "object",
                "required": ["title", "size", "when", "tags", "kind"],
                "properties": {
                    "title": {"type": "string", "minLength": 15, "maxLength": 20},
                    "size": {"type": "integer", "minimum": 3, "maximum": 9},
                    "when": {"type": "string", "format": "date-time"},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "optional": {"type": "string"},
                },
            },
            "Loop": {"$ref": "#/components/schemas/Loop"},
        }
    }
}


def test_valid_values_follow_the_constraints() -> None:
    schemas = _Schemas(SPEC)
    assert schemas.valid({"$ref": "#/components/schemas/Note"}) == {
        "title": "conformancexxxx",
        "size": 3,
        "when": "2030-01-01T00:00:00+00:00",
        "tags": ["conformance", "conformance"],
        "kind": "a",
    }
    assert schemas.valid({"type": "string", "example": "Ada"}) == "Ada"
    assert schemas.valid({"type": "integer", "default": 7}) == 7
    assert schemas.valid({"examples": ["x"]}) == "x"
    assert schemas.valid({"allOf": [{"type": "boolean"}]}) is True
    assert schemas.valid({"type": ["number", "null"], "exclusiveMinimum": 4}) == 5.0
    assert schemas.valid({"type": "integer", "maximum": 0, "minimum": -3}) == 0
    assert schemas.valid({"type": "string", "maxLength": 3}) == "con"
    assert schemas.valid({"$ref": "#/components/schemas/Loop"}) == "conformance"  # a cycle ends


@pytest.mark.parametrize(
    ("schema", "typed", "values"),
    [
        ({"type": "string"}, True, [12345, None]),
        ({"type": "integer"}, True, ["conformance", None]),
        ({"type": "number"}, True, ["conformance", None]),
        ({"type": ["string", "null"]}, True, [12345]),
        ({"type": "array"}, True, [12345, None]),
        ({"type": "boolean"}, True, [12345, None]),
        ({}, False, [12345, "conformance", [], {"conformance": 1}, True]),
    ],
)
def test_wrong_values_are_of_another_type(
    schema: dict[str, Any], typed: bool, values: list[object]
) -> None:
    assert _Schemas(SPEC).wrong(schema) == (typed, values)


def operation(spec: dict[str, Any]) -> _Operation:
    return _Operation("POST", "/api/v1/notes/items", spec, lambda: None, [])


def test_documentation_names_the_plugin_and_the_body_errors() -> None:
    report = ConformanceReport("notes")
    conformance._check_documentation(
        report,
        operation({"tags": ["other"], "operationId": "create", "requestBody": {}, "responses": {}}),
    )
    assert report.failures == [
        "[documentation] POST /api/v1/notes/items: not tagged 'notes' (tags: ['other'])",
        "[documentation] POST /api/v1/notes/items: operationId 'create' does not start notes_",
        "[documentation] POST /api/v1/notes/items: takes a body but documents no 400, 422",
    ]
    report = ConformanceReport("notes")
    documented = {"tags": ["notes"], "operationId": "notes_create", "responses": {"422": {}}}
    conformance._check_documentation(report, operation({**documented, "requestBody": {}}))
    assert report.failures == [
        "[documentation] POST /api/v1/notes/items: takes a body but documents no 400"
    ]


def test_path_parameters_name_nothing() -> None:
    found = _Operation(
        "GET",
        "/api/v1/notes/{id}/{key}/{slug}/{other}",
        {},
        lambda: None,
        [
            {"in": "path", "name": "id", "schema": {"type": "integer"}},
            {"in": "path", "name": "key", "schema": {"type": "string", "format": "uuid"}},
            {"in": "path", "name": "slug", "schema": {"type": "string"}},
            {"in": "query", "name": "q", "schema": {"type": "string"}},
        ],
    )
    assert conformance._path(found) == (
        "/api/v1/notes/987654321/00000000-0000-4000-8000-0000c0ffee00/"
        "conformance-unknown/conformance-unknown"
    )


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("API_TOKEN", True),
        ("SIGNING_KEYS", True),
        ("smtp_password", True),
        ("SENTRY_DSN", True),
        ("ACCESS_TOKEN_MINUTES", False),
        ("PASSWORD_MIN_LENGTH", False),
        ("KEYBOARD", False),
    ],
)
def test_secret_looking_names(key: str, secret: bool) -> None:
    assert conformance._looks_secret(key) is secret


def test_the_secrets_of_a_value() -> None:
    value = {
        "a": "s3cret-value",
        "b": ["another-one", "abc"],
        "url": "postgresql://user:pw-1234@db/x",
        "plain": "https://example.com/x",
        "n": 5,
    }
    assert list(conformance._secrets_in(value)) == ["s3cret-value", "another-one", "pw-1234"]


def test_a_failure_is_one_line() -> None:
    assert conformance._one_line("a\n  b \n\nc") == "a | b | c"
    assert conformance._one_line("x" * 700, limit=10) == "xxxxxxx..."


def test_a_printed_secret_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should ``plugins config`` ever print a secret (a regression of the host's redaction)."""
    import marshmallow as ma  # noqa: PLC0415

    class Settings(ma.Schema):
        WEBHOOK_SECRET = ma.fields.String(metadata={"secret": True})

    record = SimpleNamespace(settings={"WEBHOOK_SECRET": "whsec-123456"})
    app = cast("Flask", SimpleNamespace(extensions={"powerstrip.plugins": {"notes": record}}))
    plugin = cast("Plugin", SimpleNamespace(settings=Settings))
    installed = conformance._Installed(plugin, ("notes",))
    printed = '{"WEBHOOK_SECRET": "whsec-123456"}'
    monkeypatch.setattr(conformance, "_plugins_config", lambda *_: printed)
    report = ConformanceReport("notes")
    conformance._check_settings(report, installed, {}, app)
    assert report.failures == [
        "[settings] `plugins config notes` prints the secret setting WEBHOOK_SECRET"
    ]
