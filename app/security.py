"""Security basics: response headers, CORS and trusted proxies (input: :mod:`app.inputs`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from app import inputs
from app.config import HostConfig

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

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
_SECURITY_HEADERS = tuple((name.lower(), (name, value)) for name, value in SECURITY_HEADERS)


class SecurityHeaders:
    """WSGI middleware: :data:`SECURITY_HEADERS` on every answer of the app that does not set
    them itself (compared without regard to case).

    Added to the header list the app hands the server, rather than to each Flask response's
    ``headers`` in an after-request hook: werkzeug validates every header added there, then
    copies them all once more into that list, about 60 function calls a request for five
    constant headers (a tenth of what the host adds to a trivial request).
    """

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self._wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            for lowered, header in _SECURITY_HEADERS:
                if lowered not in present:
                    headers.append(header)
            return start_response(status, headers, exc_info)

        return self._wsgi_app(environ, with_headers)


def init_app(app: Flask, config: HostConfig) -> None:
    """Install the input guard, security headers, CORS and (if configured) ProxyFix."""
    app.before_request(inputs.check_input)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
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
