"""Every error is an RFC 9457 problem document, through the HTTP interface."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import Client

from app.errors import (
    PROBLEM_CONTENT_TYPE,
    VALIDATION_ERROR_TYPE,
    LastResort,
    flatten_messages,
)
from app.logs import REQUEST_ID_ENVIRON, RequestIds
from app.security import SECURITY_HEADERS
from tests.conftest import AppFactory

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    body = response.get_json(force=True)
    assert set(body) >= PROBLEM_MEMBERS
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["instance"] == response.request.path
    return body


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 428, 503])
def test_every_http_error_is_a_problem(client: FlaskClient, status: int) -> None:
    body = assert_problem(client.get(f"/api/probe/status/{status}"), status)
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["detail"]


def test_unknown_path_is_404_problem_with_request_id_echoed(client: FlaskClient) -> None:
    response = client.get("/no/such/path", headers={"X-Request-ID": "req-42"})
    body = assert_problem(response, 404)
    assert body["request_id"] == "req-42"
    assert body["title"] == "Not Found"


def test_wrong_method_is_405_with_allow_header(client: FlaskClient) -> None:
    response = client.delete("/api/probe/items")
    assert_problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_json_nested_too_deeply_is_400_not_a_500(client: FlaskClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/probe/items", data=deep, content_type="application/json")
    assert "nested too deeply" in assert_problem(response, 400)["detail"]


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/api/probe/items", data='{"name": "x",', content_type="application/json"
    )
    body = assert_problem(response, 400)
    assert "not valid JSON" in body["detail"]


def test_non_json_body_is_415(client: FlaskClient) -> None:
    response = client.post("/api/probe/items", data="name=x&count=1")
    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]


def test_body_over_limit_is_413(make_app: AppFactory) -> None:
    client = make_app(MAX_CONTENT_LENGTH=64).test_client()
    payload = json.dumps({"name": "x" * 100, "count": 1})
    response = client.post("/api/probe/items", data=payload, content_type="application/json")
    body = assert_problem(response, 413)
    assert "64 bytes" in body["detail"]


def test_body_under_limit_is_accepted(make_app: AppFactory) -> None:
    client = make_app(MAX_CONTENT_LENGTH=64).test_client()
    response = client.post("/api/probe/items", json={"name": "x", "count": 1})
    assert response.status_code == 201
    assert response.get_json() == {"name": "x", "count": 1}


def test_default_body_limit_is_one_mebibyte(client: FlaskClient) -> None:
    payload = json.dumps({"name": "x", "count": 1, "tags": ["a" * 9] * 110_000})
    assert len(payload) > 1024 * 1024
    response = client.post("/api/probe/items", data=payload, content_type="application/json")
    assert_problem(response, 413)


def test_validation_errors_are_422_with_field_messages(client: FlaskClient) -> None:
    response = client.post("/api/probe/items", json={"name": "", "tags": ["x" * 11]})
    body = assert_problem(response, 422)
    assert body["type"] == VALIDATION_ERROR_TYPE
    assert set(body["errors"]) == {"name", "count", "tags.0"}
    assert all(isinstance(m, str) for msgs in body["errors"].values() for m in msgs)


def test_problem_raised_by_a_service_keeps_its_members(client: FlaskClient) -> None:
    response = client.get("/api/probe/problem")
    body = assert_problem(response, 409)
    assert body["type"] == "urn:powerstrip:problem:conflict"
    assert body["title"] == "Edit conflict"
    assert body["detail"] == "The item was changed by someone else."
    assert response.headers["Retry-After"] == "5"


def test_bug_is_500_without_internals_and_logged_with_traceback(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = client.get("/api/probe/boom", headers={"X-Request-ID": "bug-1"})
    body = assert_problem(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    [record] = [r for r in caplog.records if r.name == "app.errors"]
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    assert record.request_id == "bug-1"  # type: ignore[attr-defined]
    assert body["detail"]


def test_500_from_abort_does_not_echo_its_description(app: Flask) -> None:
    from flask_smorest import abort  # noqa: PLC0415

    @app.route("/api/abort-500")
    def abort_500() -> None:
        abort(500, message="connection to 10.0.0.5 refused")

    response = app.test_client().get("/api/abort-500")
    body = assert_problem(response, 500)
    assert "10.0.0.5" not in response.get_data(as_text=True)
    assert body["title"] == "Internal Server Error"


def test_problem_schema_is_documented_once_and_referenced(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert "Problem" in spec["components"]["schemas"]
    responses = spec["components"]["responses"]
    for name in ("UNPROCESSABLE_ENTITY", "DEFAULT_ERROR", "TOO_MANY_REQUESTS"):
        content = responses[name]["content"]
        assert content == {
            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }


def _nested(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    # A named function: hypothesis inspects `extend` for use of its argument, and its check of a
    # lambda spread over lines is unreliable (it warned, and filterwarnings=error failed a run).
    return st.dictionaries(st.text(min_size=1, max_size=5), children, max_size=3)


@given(
    st.recursive(
        st.lists(st.text(max_size=5), min_size=1, max_size=3),
        _nested,
        max_leaves=10,
    )
)
def test_flatten_keeps_every_message(messages: object) -> None:
    def count(node: object) -> int:
        if isinstance(node, dict):
            return sum(count(v) for v in node.values())
        return len(node) if isinstance(node, list) else 1  # type: ignore[arg-type]

    flat = flatten_messages(messages)
    assert sum(len(v) for v in flat.values()) == count(messages)
    assert all(isinstance(m, str) for msgs in flat.values() for m in msgs)


def test_integrity_conflict_is_a_409_that_names_no_internals(client: FlaskClient) -> None:
    response = client.get("/api/probe/integrity")
    body = assert_problem(response, 409)
    assert "already exists" in body["detail"]
    for internal in ("accounts_users", "UNIQUE", "INSERT", "email", "constraint failed"):
        assert internal not in response.get_data(as_text=True), internal


def test_a_value_the_database_cannot_hold_is_a_422_that_names_no_internals(
    client: FlaskClient,
) -> None:
    response = client.get("/api/probe/toolong")
    body = assert_problem(response, 422)
    assert "too long or out of range" in body["detail"]
    for internal in ("INSERT", "varying", "things"):
        assert internal not in response.get_data(as_text=True), internal


def test_a_data_error_that_is_a_bug_stays_a_500(client: FlaskClient) -> None:
    response = client.get("/api/probe/divide")
    assert_problem(response, 500)
    assert "division" not in response.get_data(as_text=True)


def test_optimistic_concurrency_conflict_is_409_without_a_precondition(
    client: FlaskClient,
) -> None:
    body = assert_problem(client.get("/api/probe/stale"), 409)
    assert "changed since you read it" in body["detail"]
    assert "UPDATE" not in body["detail"]


def test_optimistic_concurrency_conflict_is_412_when_the_client_sent_if_match(
    client: FlaskClient,
) -> None:
    response = client.get("/api/probe/stale", headers={"If-Match": '"a-1"'})
    assert "changed since you read it" in assert_problem(response, 412)["detail"]
    # If-Match: * accepted any version: losing the race is a conflict, not a failed condition
    assert_problem(client.get("/api/probe/stale", headers={"If-Match": "*"}), 409)


def _crashing_middleware(environ: Any, start_response: Any) -> Any:
    raise RuntimeError("secret internals")


def _crashing_after_start(environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "application/json")])
    raise RuntimeError("too late to answer otherwise")


def test_an_exception_outside_the_app_is_a_problem_500(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(LastResort(_crashing_middleware))
    response = client.get("/api/x", headers={"X-Request-ID": "the-callers"})
    assert response.status_code == 500
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    body = response.get_json()
    assert body["status"] == 500
    assert body["instance"] == "/api/x"
    assert "secret" not in response.get_data(as_text=True)
    assert response.headers["X-Request-ID"] == body["request_id"] == "the-callers"
    (record,) = [
        r for r in caplog.records if r.getMessage() == "unhandled exception outside the app"
    ]
    assert record.request_id == body["request_id"]  # type: ignore[attr-defined]
    assert record.exc_info is not None


def test_the_last_resort_answers_with_the_id_the_request_was_given() -> None:
    """The id RequestIds gave the request (in its log lines so far), not another."""
    ids: list[str] = []

    def crashing(environ: Any, start_response: Any) -> Any:
        ids.append(environ[REQUEST_ID_ENVIRON])
        raise RuntimeError("a bug")

    response = Client(LastResort(RequestIds(crashing))).get("/", headers={"X-Request-ID": "\x01"})
    assert response.status_code == 500
    assert response.headers.getlist("X-Request-ID") == ids
    assert response.get_json()["request_id"] == ids[0]
    assert re.fullmatch(r"[0-9a-f]{32}", ids[0])  # the malformed one replaced


def test_the_last_resort_answer_carries_the_security_headers(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(environ: Any, start_response: Any) -> Any:
        raise RuntimeError("a middleware's bug")

    # Inside the last resort, where a middleware of the app would be.
    monkeypatch.setattr(app.wsgi_app, "_wsgi_app", crash)
    response = app.test_client().get("/", headers={"X-Request-ID": "crashed"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "crashed"
    for name, value in SECURITY_HEADERS:
        assert response.headers.getlist(name) == [value]


def test_an_exception_after_the_response_started_is_raised() -> None:
    with pytest.raises(RuntimeError, match="too late"):
        Client(LastResort(_crashing_after_start)).get("/")


def test_the_app_is_wrapped_by_the_last_resort_outermost(app: Flask) -> None:
    assert isinstance(app.wsgi_app, LastResort)
