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


# Added to every answer that does not set its own (a view or plugin may: the docs page's CSP).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", API_CSP),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
_SECURITY_HEADERS = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS)


def _security_headers(response: Response) -> Response:
    # One pass over the answer's headers (each ``headers.setdefault`` would scan them all),
    # by their (name, value) pairs: ``keys()`` resumes two generators per header.
    headers = response.headers
    present = {key.lower() for key, _ in headers}
    for lowered, name, value in _SECURITY_HEADERS:
        if lowered not in present:
            headers.add(name, value)
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
