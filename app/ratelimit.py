"""Rate limiting with flask-limiter: per client address, counters in memory or Redis.

``memory://`` keeps counters per process, so with N gunicorn workers a client gets up to N
times the limit; production uses ``redis://`` so every worker on every machine shares them.

When Redis is unreachable (refused, or silent past ``RATELIMIT_STORAGE_CONNECT_TIMEOUT`` /
``RATELIMIT_STORAGE_TIMEOUT``) the limits fail open to per-process counters in memory rather
than failing or stalling requests: each process logs a warning, counts it
(``powerstrip_rate_limit_storage_fallbacks_total``, ``powerstrip_rate_limit_storage_fallback``)
and goes back to Redis once a ping answers (flask-limiter retries after 1, 2, 4... seconds).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from operator import methodcaller
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_limiter import HeaderNames, Limiter
from flask_limiter.util import get_remote_address
from limits import parse_many
from limits.strategies import RateLimiter

from app import counters
from app.config import HostConfig
from app.metrics import METRICS, Metrics
from powerstrip.contracts import HealthCheck
from powerstrip.problems import Problem

if TYPE_CHECKING:
    # redis is imported only where Redis holds the counters: importing it (with the
    # OpenTelemetry SDK it pulls in) took about a tenth of the app's startup.
    import redis

log = logging.getLogger(__name__)
PER_PROCESS_WARNING = (
    "rate limits count per process (RATELIMIT_STORAGE_URI is memory://): with N gunicorn "
    "workers a client gets up to N times every limit, login limits included; set "
    "RATELIMIT_STORAGE_URI to a redis:// URL shared by every worker"
)

REDIS_SCHEMES = frozenset({"redis", "rediss"})
_T = TypeVar("_T")


# flask-limiter writes Retry-After on every response (overwriting one a view set); it writes
# it under this name instead and _retry_after_only_on_429 turns it into Retry-After on 429s.
_LIMITER_RETRY_AFTER = "X-Powerstrip-Limiter-Retry-After"


def _retry_after_only_on_429(response: Response) -> Response:
    if response.status_code != 429:  # one pass over the headers instead of pop's two
        response.headers.remove(_LIMITER_RETRY_AFTER)
        return response
    value = response.headers.pop(_LIMITER_RETRY_AFTER, None)
    if value is not None:
        response.headers["Retry-After"] = value
    return response


def _redis_timeouts(config: HostConfig) -> dict[str, float]:
    """Socket timeouts of every Redis client: without them a silent Redis stalls requests."""
    return {
        "socket_connect_timeout": config.RATELIMIT_STORAGE_CONNECT_TIMEOUT,
        "socket_timeout": config.RATELIMIT_STORAGE_TIMEOUT,
    }


def storage_uri(configured: str) -> str:
    """The storage URI for ``limits``: ``memory://`` counts in :mod:`app.counters`."""
    if urlsplit(configured).scheme == "memory":
        return f"{counters.SCHEME}://"  # memory:// takes no options
    return configured


def make_limiter(config: HostConfig) -> Limiter:
    """The app's limiter: default limits per client address, counters in memory or Redis."""
    uses_redis = urlsplit(config.RATELIMIT_STORAGE_URI).scheme in REDIS_SCHEMES
    if config.is_production and config.RATELIMIT_ENABLED and not uses_redis:
        log.warning(PER_PROCESS_WARNING)
    # limits passes these to redis.from_url; flask-limiter's annotation omits floats.
    options = cast("dict[str, str | int]", _redis_timeouts(config) if uses_redis else {})
    return Limiter(
        get_remote_address,
        default_limits=list(config.RATELIMIT_DEFAULT),
        storage_uri=storage_uri(config.RATELIMIT_STORAGE_URI),
        storage_options=options,
        headers_enabled=True,
        header_name_mapping={HeaderNames.RETRY_AFTER: _LIMITER_RETRY_AFTER},
        enabled=config.RATELIMIT_ENABLED,
        key_prefix=config.RATELIMIT_KEY_PREFIX,
        # If Redis goes away, keep limiting per process rather than failing every request.
        in_memory_fallback_enabled=True,
        # The fallback rescues only the request whose storage error switched it on: others
        # already waiting on Redis meanwhile would raise theirs (a 500). Those few go through
        # uncounted, logged ("Swallowing error"): failing open, as the fallback does.
        swallow_errors=True,
    )


def init_app(app: Flask, limiter: Limiter, *, exempt_blueprints: list[str]) -> None:
    """Apply the default limits to every route but the exempt blueprints.

    Also reports the limiter falling back to memory and back (log, metrics when enabled).
    """
    app.after_request(_retry_after_only_on_429)  # runs after the limiter's own hook
    limiter.init_app(app)
    skip_blueprints(app, limiter, frozenset(exempt_blueprints))
    resolve_once(limiter)
    measured: Metrics | None = app.extensions.get(METRICS)
    app.after_request(FallbackMonitor(limiter, measured))


def skip_blueprints(app: Flask, limiter: Limiter, exempt: frozenset[str]) -> None:
    """Keep ``limiter``'s request check away from the ``exempt`` blueprints' requests.

    Neither of flask-limiter's own ways is free: ``limiter.exempt(blueprint)`` and a request
    filter each leave its check resolving limits and meta-limit exemptions for a request it
    then does not count (6% of the live probe's CPU, served), and a filter runs on
    every other request too. Here the check it registered (``init_app`` in 4.x adds its bound
    ``_check_request_limit`` to the before-request hooks unless limiting is disabled; this
    fails at startup if it did not) is wrapped, so their requests never reach it: no limit,
    no X-RateLimit headers.
    """
    check = limiter._check_request_limit  # the hook it registered (see above)

    def check_unless_exempt() -> None:
        if request.blueprint not in exempt:
            check()

    hooks = app.before_request_funcs.get(None, [])
    if check in hooks:
        hooks[hooks.index(check)] = check_unless_exempt
    elif limiter.enabled:  # a flask-limiter that checks requests some other way
        raise RuntimeError("flask-limiter's request check is not a before-request hook")


_Resolved = tuple[list[Any], ...]  # flask-limiter's runtime limits (a private class)


def resolve_once(limiter: Limiter) -> None:
    """Make ``limiter`` resolve each route's limits once instead of on every request.

    flask-limiter works out a request's limits from scratch each time: it parses the default
    limit strings, builds their runtime limits and looks up the route's and its blueprints'
    exemptions (about 130 function calls a request). The answer depends only on what its
    limit manager is asked (the route, its blueprint, what marks it); here the limits are the
    configured defaults and plugins cannot decorate routes with limits of their own, so it is
    the same for every request of a route and is kept per question: a few per route.

    ``limit_manager.resolve_limits`` is flask-limiter's (4.x) own step;
    tests/app/test_ratelimit.py checks that it is asked once per route and that every limit
    still counts. Limits declared on the limiter after the first requests (``limiter.limit``,
    ``exempt``, new default limits) would not reach routes already resolved: the host declares
    all of them before serving, and plugins have no access to the limiter.
    """
    manager = limiter.limit_manager
    resolve = manager.resolve_limits
    resolved: dict[tuple[str | None, str | None, str | None, bool, bool], _Resolved] = {}

    def resolve_limits(
        app: Flask,
        endpoint: str | None = None,
        blueprint: str | None = None,
        callable_name: str | None = None,
        in_middleware: bool = False,
        marked_for_limiting: bool = False,
    ) -> _Resolved:
        question = (endpoint, blueprint, callable_name, in_middleware, marked_for_limiting)
        answer = resolved.get(question)
        if answer is None:
            answer = resolved[question] = resolve(app, *question)
        return answer

    manager.resolve_limits = resolve_limits  # type: ignore[method-assign]


def counting_in_memory(limiter: Limiter) -> bool:
    """Whether ``limiter`` counts in its in-memory fallback because its storage failed.

    flask-limiter keeps this in a private flag (4.x; tests/app/test_ratelimit.py pins it).
    """
    return bool(getattr(limiter, "_storage_dead", False))


class FallbackMonitor:
    """An after-request hook noticing when the limiter starts and stops counting in memory.

    flask-limiter switches on its own (on a storage error, back after a successful ping); this
    logs each switch and keeps a counter of fallbacks and a per-process 0/1 gauge.
    """

    def __init__(self, limiter: Limiter, measured: Metrics | None) -> None:
        self._limiter = limiter
        self._measured = measured
        self._lock = threading.Lock()
        self._in_memory = False

    def __call__(self, response: Response) -> Response:
        in_memory = counting_in_memory(self._limiter)
        if in_memory == self._in_memory:  # the common case: no lock
            return response
        with self._lock:
            if in_memory == self._in_memory:
                return response
            self._in_memory = in_memory
        if in_memory:
            log.warning("rate limit storage unreachable: counting in memory, per process")
        else:
            log.info("rate limit storage reachable again: counting in it")
        if self._measured is not None:
            if in_memory:
                self._measured.limit_fallbacks.inc()
            self._measured.limit_fallback.set(int(in_memory))
        return response


class LimiterRateLimits:
    """The SDK's :class:`~powerstrip.RateLimits` on the app limiter's storage.

    With Redis every worker on every machine shares the counts. A Redis error fails open to
    counting in this process's memory, as the limiter's own fallback does (which this follows
    once the limiter has noticed).
    """

    def __init__(
        self, limiter: Limiter, namespace: str, errors: tuple[type[Exception], ...] = (OSError,)
    ) -> None:
        """``errors``: what the storage raises when unreachable (:func:`storage_errors`)."""
        self._limiter = limiter
        self._namespace = namespace
        self._errors = errors
        self._fallback: RateLimiter | None = None

    def hit(self, key: str, limit: str, *, detail: str = "Too many attempts.") -> None:
        """Count one attempt for ``key``; a 429 problem (with Retry-After) past ``limit``."""
        if not self._limiter.enabled:
            return
        for item in parse_many(limit):
            if not self._run(methodcaller("hit", item, self._namespace, key)):
                reset, _ = self._run(methodcaller("get_window_stats", item, self._namespace, key))
                retry_after = max(1, math.ceil(reset - time.time()))
                raise Problem(429, detail, headers={"Retry-After": str(retry_after)})

    def exceeded(self, key: str, limit: str) -> bool:
        """Whether ``key`` has used up ``limit`` (without counting an attempt)."""
        if not self._limiter.enabled:
            return False
        return any(
            not self._run(methodcaller("test", item, self._namespace, key))
            for item in parse_many(limit)
        )

    def clear(self, key: str, limit: str) -> None:
        """Forget ``key``'s attempts against ``limit`` (after a success)."""
        if not self._limiter.enabled:
            return
        for item in parse_many(limit):
            self._run(methodcaller("clear", item, self._namespace, key))

    def _run(self, operation: Callable[[RateLimiter], _T]) -> _T:
        """``operation`` on the limiter's strategy; on memory's if its storage fails."""
        strategy = self._limiter.limiter  # its in-memory fallback once the limiter noticed
        try:
            return operation(strategy)
        except self._errors as exc:
            log.warning(
                "rate limit storage unreachable: counting in memory",
                extra={"error": type(exc).__name__},
            )
            if self._fallback is None:
                self._fallback = type(strategy)(counters.LazyMemoryStorage())
            return operation(self._fallback)


def storage_errors(config: HostConfig) -> tuple[type[Exception], ...]:
    """What the configured storage raises when it cannot be reached: Redis's errors for every
    storage but ``memory://`` (``redis+sentinel://`` too)."""
    if urlsplit(config.RATELIMIT_STORAGE_URI).scheme == "memory":
        return (OSError,)
    import redis  # noqa: PLC0415 - only with Redis (see the module's imports)

    return (redis.RedisError, OSError)


def health_checks(config: HostConfig) -> list[HealthCheck]:
    """A readiness check of the Redis holding the counters, when Redis holds them."""
    uri = config.RATELIMIT_STORAGE_URI
    if urlsplit(uri).scheme not in REDIS_SCHEMES:
        return []
    import redis  # noqa: PLC0415 - only with Redis (see the module's imports)

    # Creating the client does no I/O; each probe pings with the limiter's bounded timeouts.
    client = redis.Redis.from_url(uri, **_redis_timeouts(config))

    def ping() -> None:
        client.ping()

    return [HealthCheck("redis", ping)]


def redis_client(limiter: Limiter) -> redis.Redis | None:
    """The Redis client holding the limiter's counters (after ``init_app``), if Redis does."""
    loaded = sys.modules.get("redis")  # not loaded: no storage of the limiter is a Redis
    client = getattr(limiter.storage, "storage", None)
    return client if loaded is not None and isinstance(client, loaded.Redis) else None
