"""The input guard (app/inputs.py): whole classes of bad input refused before any view."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from app.errors import MAX_FIELD_NAME, MAX_LISTED_ERRORS, PROBLEM_CONTENT_TYPE
from app.inputs import MAX_DEPTH, TOO_LARGE, _plain, body_errors, parse_json
from tests.conftest import AppFactory

ITEMS = "/api/probe/items"


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


def post_raw(client: FlaskClient, body: str | bytes) -> TestResponse:
    return client.post(ITEMS, data=body, content_type="application/json")


def item(**extra: Any) -> dict[str, Any]:
    return {"name": "x", "count": 1, **extra}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"name": "a\\u0000b", "count": 1}', "name"),
        ('{"name": "a\\ud800b", "count": 1}', "name"),  # a lone high surrogate
        ('{"name": "\\udc00", "count": 1}', "name"),  # a lone low surrogate
        ('{"name": "x", "count": 1, "tags": ["ok", "a\\u0000"]}', "tags.1"),
        ('{"name": "x", "count": 1, "extra": {"deep": ["\\ud800"]}}', "extra.deep.0"),
    ],
)
def test_strings_with_nul_or_lone_surrogates_are_422_naming_the_field(
    client: FlaskClient, raw: str, field: str
) -> None:
    body = problem(post_raw(client, raw), 422)
    assert body["type"] == "urn:powerstrip:problem:validation-error"
    assert body["errors"] == {
        field: ["Contains NUL or a lone surrogate, which cannot be stored; remove it."]
    }


def test_a_member_name_with_nul_is_422(client: FlaskClient) -> None:
    body = problem(post_raw(client, '{"name": "x", "count": 1, "a\\u0000": 1}'), 422)
    assert body["errors"] == {"_schema": ["A member name contains NUL or a lone surrogate."]}


def test_valid_unicode_passes_the_guard(client: FlaskClient) -> None:
    # A surrogate pair is one character (U+1F600); U+FFFD sent as such is a valid character.
    response = post_raw(client, '{"name": "\\ud83d\\ude00 \\ufffd é", "count": 1}')
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["name"] == "\U0001f600 \ufffd é"


@pytest.mark.parametrize(
    "number",
    [str(2**63), str(-(2**63) - 1), "9" * 5000, "-" + "9" * 100_000],
)
def test_integers_beyond_64_bits_are_422_without_being_converted(
    client: FlaskClient, number: str
) -> None:
    body = problem(post_raw(client, '{"name": "x", "count": ' + number + "}"), 422)
    assert body["errors"] == {"count": ["Out of range: at most a signed 64-bit integer."]}


def test_the_largest_64_bit_integer_reaches_the_schema(client: FlaskClient) -> None:
    response = post_raw(client, json.dumps(item(count=2**63 - 1)))
    assert response.status_code == 201
    assert response.get_json()["count"] == 2**63 - 1


def test_numbers_beyond_a_double_are_422(client: FlaskClient) -> None:
    body = problem(post_raw(client, '{"name": "x", "count": 1e400}'), 422)
    assert body["errors"] == {"count": ["Out of range: beyond a double-precision number."]}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_400(client: FlaskClient, constant: str) -> None:
    body = problem(post_raw(client, '{"name": "x", "count": ' + constant + "}"), 400)
    assert constant in body["detail"]


def test_nesting_is_limited_to_max_depth(client: FlaskClient) -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    allowed = post_raw(client, '{"name": "x", "count": 1, "tags": ' + deepest + "}")
    # One level for the object, MAX_DEPTH for the arrays: one too many.
    assert "nested too deeply" in problem(allowed, 400)["detail"]
    fits = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    response = post_raw(client, '{"name": "x", "count": 1, "tags": ' + fits + "}")
    assert problem(response, 422)["errors"]["tags.0"]  # the schema's answer, not the guard's


def test_parser_recursion_is_400(client: FlaskClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert "nested too deeply" in problem(post_raw(client, deep), 400)["detail"]


def test_malformed_json_is_left_to_the_views_parser(client: FlaskClient) -> None:
    body = problem(post_raw(client, '{"name": '), 400)
    assert body["detail"] == "The request body is not valid JSON."


def test_validation_errors_are_capped_and_counted(client: FlaskClient) -> None:
    document = item(**{f"field{i}": 1 for i in range(60_000)})
    response = client.post(ITEMS, json=document)
    body = problem(response, 422)
    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert body["omitted_errors"] == 60_000 - MAX_LISTED_ERRORS
    assert len(response.get_data()) < 10_000  # was 1.8 MB


def test_guard_errors_are_capped_too(client: FlaskClient) -> None:
    document = item(tags=["\x00"] * 1000)
    body = problem(client.post(ITEMS, json=document), 422)
    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert body["omitted_errors"] == 1000 - MAX_LISTED_ERRORS


def test_a_long_field_name_is_not_echoed_whole(client: FlaskClient) -> None:
    body = problem(client.post(ITEMS, json=item(**{"k" * 100_000: 1})), 422)
    (name,) = body["errors"]
    assert name == "k" * MAX_FIELD_NAME + "..."


def test_nul_in_a_query_value_or_name_is_422_naming_it(client: FlaskClient) -> None:
    body = problem(client.get(f"{ITEMS}?q=a%00b&ok=1&n%00=2"), 422)
    assert set(body["errors"]) == {"query.q", "query.n\x00"}


@pytest.mark.parametrize("query", ["q=%ED%A0%80", "q=%FF", "q=%C3"])
def test_a_query_string_that_is_not_utf8_is_400(client: FlaskClient, query: str) -> None:
    assert problem(client.get(f"{ITEMS}?{query}"), 400)["detail"] == (
        "The query string is not valid UTF-8."
    )


def test_a_percent_encoded_utf8_query_passes(client: FlaskClient) -> None:
    assert client.get(f"{ITEMS}?q=%C3%A9%E2%82%AC+x").status_code == 200


def test_nul_in_the_path_is_404(client: FlaskClient) -> None:
    problem(client.get("/api/probe/items%00"), 404)


def test_a_path_that_is_not_utf8_is_400(client: FlaskClient) -> None:
    # PATH_INFO holds the raw bytes as latin-1 (PEP 3333): here an encoded lone surrogate.
    response = client.get("/", environ_overrides={"PATH_INFO": "/api/probe/items\xed\xa0\x80"})
    assert problem(response, 400)["detail"] == "The request path is not valid UTF-8."


def chunked(client: FlaskClient, data: bytes) -> TestResponse:
    # As gunicorn hands a chunked body over: no Content-Length, the stream ends by itself.
    return client.post(
        ITEMS,
        input_stream=io.BytesIO(data),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_over_the_limit_is_413_not_cut(make_app: AppFactory) -> None:
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    valid = json.dumps(item()).encode()
    problem(chunked(client, valid + b" " * 2000), 413)  # werkzeug alone cut it and said 201
    problem(chunked(client, valid + b" " * (1001 - len(valid))), 413)  # one byte over


def test_a_chunked_body_at_the_limit_is_accepted(make_app: AppFactory) -> None:
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    valid = json.dumps(item()).encode()
    assert chunked(client, valid + b" " * (1000 - len(valid))).status_code == 201
    assert chunked(client, valid).status_code == 201


def test_parse_json_never_converts_long_integers() -> None:
    assert parse_json(b'{"a": [' + b"1" * 20 + b", 12]}") == {"a": [TOO_LARGE, 12]}
    assert parse_json(b"-9223372036854775808") == -(2**63)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_body_errors_name_exactly_the_unstorable_values(document: Any) -> None:
    found = list(body_errors(document))

    def expected(value: Any) -> int:
        if isinstance(value, dict):
            return sum(
                1 if ("\x00" in k or not _encodes(k)) else expected(v) for k, v in value.items()
            )
        if isinstance(value, list):
            return sum(expected(v) for v in value)
        if isinstance(value, str):
            return int("\x00" in value or not _encodes(value))
        if isinstance(value, bool) or value is None:
            return 0
        if isinstance(value, int):
            return int(not -(2**63) <= value < 2**63)
        return int(value != value or value in (float("inf"), float("-inf")))  # noqa: PLR0124

    assert len(found) == expected(document)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(JSON, st.booleans(), st.sampled_from([None, 2]))
def test_a_body_plain_to_look_at_holds_nothing_the_guard_refuses(
    document: Any, ascii_only: bool, indent: int | None
) -> None:
    data = json.dumps(document, ensure_ascii=ascii_only, indent=indent)
    raw = data.encode("utf-8", "surrogatepass")
    if _plain(raw):  # not parsed by the guard: the walk must have found nothing either
        assert list(body_errors(parse_json(raw))) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\\u0000"}',  # NUL, escaped
        b'{"name": "\\ud800"}',  # a lone surrogate, escaped
        '{"name": "caf\u00e9"}'.encode(),  # non-ASCII: checked, though storable
        b'{"count": 9223372036854775808}',  # 2**63
        b'{"count": 1e400}',
        b'{"count": 1E4}',
        b'{"count": NaN}',
        b'{"count": -Infinity}',
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
        b'{"name": "x\x7f"}',
    ],
)
def test_a_body_that_may_hold_what_the_guard_refuses_is_walked(raw: bytes) -> None:
    assert not _plain(raw)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(item(tags=["a", "b"], ratio=0.5, nothing=None, on=True)).encode(),
        json.dumps(item(), indent=2).encode(),  # JSON's whitespace
        b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1),
        b'{"count": 922337203685477580}',  # 18 digits
    ],
)
def test_a_plain_body_is_not_parsed_by_the_guard(raw: bytes) -> None:
    assert _plain(raw)
