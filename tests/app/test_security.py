"""Security headers, CORS and the trusted-proxy setting."""

from __future__ import annotations

from flask.testing import FlaskClient

from app.security import API_CSP
from tests.conftest import AppFactory

ORIGIN = "https://app.example.com"


def test_security_headers_on_api_and_error_responses(client: FlaskClient) -> None:
    for response in (client.get("/api/probe/items"), client.get("/missing")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Security-Policy"] == API_CSP


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
