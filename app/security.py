"""Security basics: response headers, CORS and trusted proxies (input: :mod:`app.inputs`)."""

from __future__ import annotations

from flask import Flask, Response
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from app import inputs
from app.config import HostConfig

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
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


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", API_CSP)
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    return response


def init_app(app: Flask, config: HostConfig) -> None:
    """Install the input guard, security headers, CORS and (if configured) ProxyFix."""
    app.before_request(inputs.check_input)
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
