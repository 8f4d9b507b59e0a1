"""Security headers, CORS and the trusted-proxy setting."""

from __future__ import annotations

from flask import Flask, Response
from flask.testing import FlaskClient

from app.security import API_CSP, SECURITY_HEADERS
from tests.conftest import AppFactory

ORIGIN = "https://app.example.com"


def test_security_headers_on_api_and_error_responses(app: Flask) -> None:
    @app.get("/test-fails")
    def fails() -> str:
        raise RuntimeError("a bug")

    client = app.test_client()
    answers = [client.get("/api/probe/items"), client.get("/missing"), client.get("/test-fails")]
    assert [answer.status_code for answer in answers] == [200, 404, 500]
    for response in answers:
        for name, value in SECURITY_HEADERS:
            assert response.headers.getlist(name) == [value]
        assert response.headers["Content-Security-Policy"] == API_CSP


def test_a_security_header_an_answer_sets_is_kept(app: Flask) -> None:
    """Whatever the case of its name; the others are still added."""

    @app.get("/test-framed")
    def framed() -> Response:
        answer = Response("ok")
        answer.headers["x-frame-options"] = "SAMEORIGIN"
        return answer

    response = app.test_client().get("/test-framed")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_no_cors_by_default(client: FlaskClient) -> None:
    response = client.get("/api/probe/items", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_only_listed_origins(make_app: AppFactory) -> None:
    client = make_app(CORS_ORIGINS=[ORIGIN]).test_client()
    allowed = client.get("/api/probe/items", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    other = client.get("/api/probe/items", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options(
        "/api/probe/items",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_forwarded_headers_ignored_without_trusted_proxy(make_app: AppFactory) -> None:
    client = make_app(RATELIMIT_DEFAULT=["1/minute"]).test_client()
    assert (
        client.get("/api/probe/items", headers={"X-Forwarded-For": "203.0.113.1"}).status_code
        == 200
    )
    # A spoofed header does not buy a fresh limit: the socket address is what counts.
    spoofed = client.get("/api/probe/items", headers={"X-Forwarded-For": "203.0.113.2"})
    assert spoofed.status_code == 429


def test_forwarded_for_used_with_trusted_proxy(make_app: AppFactory) -> None:
    client = make_app(RATELIMIT_DEFAULT=["1/minute"], TRUSTED_PROXY_COUNT=1).test_client()
    assert (
        client.get("/api/probe/items", headers={"X-Forwarded-For": "203.0.113.1"}).status_code
        == 200
    )
    assert (
        client.get("/api/probe/items", headers={"X-Forwarded-For": "203.0.113.2"}).status_code
        == 200
    )
    assert (
        client.get("/api/probe/items", headers={"X-Forwarded-For": "203.0.113.2"}).status_code
        == 429
    )


def test_get_with_body_is_not_checked_for_json(client: FlaskClient) -> None:
    assert client.get("/api/probe/items", data="ignored").status_code == 200


def test_chunked_non_json_body_is_415(client: FlaskClient) -> None:
    response = client.post(
        "/api/probe/items",
        data=b"name=x",
        headers={"Transfer-Encoding": "chunked", "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
