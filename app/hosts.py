"""The Host header: only the configured names are served, and no URL the API makes repeats it.

- ``TRUSTED_HOSTS`` (host configuration): a request naming another host (its ``Host`` header,
  or ``X-Forwarded-Host`` from a proxy trusted through ``TRUSTED_PROXY_COUNT``; without either,
  the server's own address) is a 400 problem before any other hook (rate limit, credentials)
  runs. Names match as Flask's ``TRUSTED_HOSTS`` do (werkzeug's ``host_is_trusted``: the port
  ignored, ``.example.com`` for it and its subdomains), in lower case. Flask's own setting is
  not used: it makes ``request.host`` raise, in code that runs outside the error handlers too
  (OpenTelemetry's Flask instrumentation reads ``request.url`` in ``start_response``: a bare
  500). Unset, any host is served (production warns at startup).
- An HTTP/1.1 request without a ``Host`` header, or with one that is not ``host[:port]``, is a
  400 problem (RFC 9112 section 3.2).
- Werkzeug's own redirects (308: repeated slashes merged, a rule's trailing slash) carry an
  absolute URL built from the ``Host`` header; they are answered with a path-only
  ``Location`` instead, which starts with exactly one ``/`` (``//other.example/x`` in a
  ``Location`` would name another host). A path sent with several leading slashes is read
  with one (werkzeug's ``request.path``), so ``//other.example/x`` is a path on this server:
  a 404 here.
- Every other URL the API generates is relative (``Link`` from ``request.path``, ``Location``
  from ``url_for``), so whether or not ``TRUSTED_HOSTS`` is set, no answer reflects the
  ``Host`` header.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Flask, Response
from werkzeug.routing import RequestRedirect
from werkzeug.sansio.utils import host_is_trusted

from app.config import HostConfig
from powerstrip.http import current_request
from powerstrip.problems import Problem

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

UNTRUSTED_HOST = "This server does not answer for the host the request names."
MISSING_HOST = "An HTTP/1.1 request needs a Host header naming the server."
INVALID_HOST = "The Host header is not a host name with an optional port."
_PROTOCOL = re.compile(r"HTTP/(\d+)(?:\.(\d+))?")

log = logging.getLogger(__name__)


class LowercaseHost:
    """WSGI middleware: the ``Host`` header in lower case, as ``TRUSTED_HOSTS`` is written
    (host names are case-insensitive; werkzeug compares them as sent)."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self._wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if isinstance(host, str):
            environ["HTTP_HOST"] = host.lower()
        return self._wsgi_app(environ, start_response)


def _at_least_http_1_1(protocol: object) -> bool:
    match = _PROTOCOL.fullmatch(protocol) if isinstance(protocol, str) else None
    return match is not None and (int(match[1]), int(match[2] or 0)) >= (1, 1)


def local_location(path: str, query: str = "") -> str:
    """A path-only ``Location``: ``path`` from exactly one ``/`` (``//x`` and ``/\\x`` name
    another host in a relative reference), then the query."""
    local = "/" + path.lstrip("/\\")
    return f"{local}?{query}" if query else local


def _redirect(location: str) -> Response:
    response = Response(status=308)
    del response.headers["Content-Type"]
    response.headers["Location"] = location
    return response


def check_host(trusted: Sequence[str]) -> Response | None:
    """Refuse a missing, malformed or untrusted (``trusted``: empty for any) host; answer
    routing redirects path-only."""
    handled = current_request()
    environ = handled.environ
    host = environ.get("HTTP_HOST")
    if not host and _at_least_http_1_1(environ.get("SERVER_PROTOCOL")):
        raise Problem(400, MISSING_HOST)
    if host and not host_is_trusted(host, None):  # its characters only (no list: any name)
        raise Problem(400, INVALID_HOST)
    if trusted and not host_is_trusted(handled.host, trusted):  # Host, or the server's address
        raise Problem(400, UNTRUSTED_HOST)
    routing = handled.routing_exception
    if isinstance(routing, RequestRedirect):  # its URL is absolute, made with the Host
        target = urlsplit(routing.new_url)
        return _redirect(local_location(target.path, target.query))
    return None


def init_app(app: Flask, config: HostConfig) -> None:
    """Serve only ``TRUSTED_HOSTS`` (if set); call right after logging and metrics are set up
    and before any other hook (a refused host is measured and logged, nothing else runs)."""
    trusted = config.TRUSTED_HOSTS
    if not trusted and config.is_production:
        log.warning(
            "TRUSTED_HOSTS is not set: any Host header is served (the URLs the API makes are "
            "relative, so none repeats it); set it to the names clients use"
        )
    app.wsgi_app = LowercaseHost(app.wsgi_app)  # type: ignore[method-assign]
    app.before_request(lambda: check_host(trusted))
