"""Rate limiting with flask-limiter: per client address, counters in memory or Redis.

``memory://`` keeps counters per process, so with N gunicorn workers a client gets up to N
times the limit; production uses ``redis://`` so every worker on every machine shares them.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Flask, Response
from flask_limiter import HeaderNames, Limiter
from flask_limiter.util import get_remote_address

from app.config import HostConfig
from app.contracts import HealthCheck

# flask-limiter writes Retry-After on every response (overwriting one a view set); it writes
# it under this name instead and _retry_after_only_on_429 turns it into Retry-After on 429s.
_LIMITER_RETRY_AFTER = "X-Powerstrip-Limiter-Retry-After"


def _retry_after_only_on_429(response: Response) -> Response:
    value = response.headers.pop(_LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and value is not None:
        response.headers["Retry-After"] = value
    return response


def init_app(app: Flask, config: HostConfig, *, exempt_blueprints: list[str]) -> Limiter:
    """Apply the configured default limits to every route but the exempt blueprints."""
    limiter = Limiter(
        get_remote_address,
        default_limits=list(config.RATELIMIT_DEFAULT),
        storage_uri=config.RATELIMIT_STORAGE_URI,
        headers_enabled=True,
        header_name_mapping={HeaderNames.RETRY_AFTER: _LIMITER_RETRY_AFTER},
        enabled=config.RATELIMIT_ENABLED,
        key_prefix=config.RATELIMIT_KEY_PREFIX,
        # If Redis goes away, keep limiting per process rather than failing every request.
        in_memory_fallback_enabled=True,
    )
    app.after_request(_retry_after_only_on_429)  # runs after the limiter's own hook
    limiter.init_app(app)
    for name in exempt_blueprints:
        limiter.exempt(cast(Blueprint, app.blueprints[name]))
    return limiter


def health_checks(config: HostConfig) -> list[HealthCheck]:
    """A readiness check of the Redis holding the counters, when Redis holds them."""
    uri = config.RATELIMIT_STORAGE_URI
    if urlsplit(uri).scheme not in {"redis", "rediss"}:
        return []
    # Creating the client does no I/O; each probe pings with a bounded timeout.
    client = redis.Redis.from_url(uri, socket_connect_timeout=2, socket_timeout=2)

    def ping() -> None:
        client.ping()

    return [HealthCheck("redis", ping)]
