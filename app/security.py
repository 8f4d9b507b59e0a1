"""Security basics: a JSON-only API, response headers, CORS and trusted proxies."""

from __future__ import annotations

import json

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import HostConfig
from powerstrip.problems import Problem

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXPOSED_HEADERS = [
    "X-Request-ID",
    "ETag",
    "Location",
    "Link",
    "X-Pagination",
    "Idempotent-Replayed",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]


def _require_json_body() -> None:
    """Refuse a request body that is not JSON (415) or too large (413) before any view runs."""
    if request.method not in BODY_METHODS:
        return
    length = request.content_length
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not length and not chunked:
        return
    limit = request.max_content_length
    if length and limit is not None and length > limit:
        raise Problem(413, f"The request body exceeds the limit of {limit} bytes.")
    if not request.is_json:
        raise Problem(
            415,
            "This API accepts only JSON bodies: send Content-Type: application/json.",
            headers={"Accept": "application/json"},
        )
    try:
        json.loads(request.get_data(cache=True))
    except RecursionError:  # the parsers' stack gives out before the body does: never a 500
        raise Problem(400, "The JSON body is nested too deeply.") from None
    except ValueError:
        pass  # malformed JSON: the view's parser answers it (a 400 naming the position)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", API_CSP)
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    return response


def init_app(app: Flask, config: HostConfig) -> None:
    """Install the JSON-body guard, security headers, CORS and (if configured) ProxyFix."""
    app.before_request(_require_json_body)
    app.after_request(_security_headers)
    if config.CORS_ORIGINS:
        CORS(
            app,
            resources={r"/api/*": {"origins": list(config.CORS_ORIGINS)}},
            expose_headers=EXPOSED_HEADERS,
            supports_credentials=False,
            max_age=600,
        )
    if config.TRUSTED_PROXY_COUNT:
        count = config.TRUSTED_PROXY_COUNT
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count
        )
