"""Rate limiting with flask-limiter: per client address, counters in memory or Redis.

``memory://`` keeps counters per process, so with N gunicorn workers a client gets up to N
times the limit; production uses ``redis://`` so every worker on every machine shares them.
"""

from __future__ import annotations

import math
import time
from typing import cast
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Flask, Response
from flask_limiter import HeaderNames, Limiter
from flask_limiter.util import get_remote_address
from limits import parse_many

from app.config import HostConfig
from powerstrip.contracts import HealthCheck
from powerstrip.problems import Problem

# flask-limiter writes Retry-After on every response (overwriting one a view set); it writes
# it under this name instead and _retry_after_only_on_429 turns it into Retry-After on 429s.
_LIMITER_RETRY_AFTER = "X-Powerstrip-Limiter-Retry-After"


def _retry_after_only_on_429(response: Response) -> Response:
    value = response.headers.pop(_LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and value is not None:
        response.headers["Retry-After"] = value
    return response


def make_limiter(config: HostConfig) -> Limiter:
    """The app's limiter: default limits per client address, counters in memory or Redis."""
    return Limiter(
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


def init_app(app: Flask, limiter: Limiter, *, exempt_blueprints: list[str]) -> None:
    """Apply the default limits to every route but the exempt blueprints."""
    app.after_request(_retry_after_only_on_429)  # runs after the limiter's own hook
    limiter.init_app(app)
    for name in exempt_blueprints:
        limiter.exempt(cast(Blueprint, app.blueprints[name]))


class LimiterRateLimits:
    """The SDK's :class:`~powerstrip.RateLimits` on the app limiter's storage.

    With Redis every worker on every machine shares the counts.
    """

    def __init__(self, limiter: Limiter, namespace: str) -> None:
        self._limiter = limiter
        self._namespace = namespace

    def hit(self, key: str, limit: str, *, detail: str = "Too many attempts.") -> None:
        """Count one attempt for ``key``; a 429 problem (with Retry-After) past ``limit``."""
        if not self._limiter.enabled:
            return
        strategy = self._limiter.limiter
        for item in parse_many(limit):
            if not strategy.hit(item, self._namespace, key):
                reset, _ = strategy.get_window_stats(item, self._namespace, key)
                retry_after = max(1, math.ceil(reset - time.time()))
                raise Problem(429, detail, headers={"Retry-After": str(retry_after)})

    def exceeded(self, key: str, limit: str) -> bool:
        """Whether ``key`` has used up ``limit`` (without counting an attempt)."""
        if not self._limiter.enabled:
            return False
        strategy = self._limiter.limiter
        return any(not strategy.test(item, self._namespace, key) for item in parse_many(limit))

    def clear(self, key: str, limit: str) -> None:
        """Forget ``key``'s attempts against ``limit`` (after a success)."""
        if not self._limiter.enabled:
            return
        for item in parse_many(limit):
            self._limiter.limiter.clear(item, self._namespace, key)


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


def redis_client(limiter: Limiter) -> redis.Redis | None:
    """The Redis client holding the limiter's counters (after ``init_app``), if Redis does."""
    client = getattr(limiter.storage, "storage", None)
    return client if isinstance(client, redis.Redis) else None
