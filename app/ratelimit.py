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

import datetime
import logging
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, Response, g
from flask_limiter import HeaderNames, Limiter, RateLimitExceeded
from flask_limiter.util import get_qualified_name, get_remote_address
from limits import parse_many
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from werkzeug.http import parse_date

from app import counters
from app.config import HostConfig
from app.metrics import METRICS, Metrics
from powerstrip.contracts import HealthCheck
from powerstrip.http import current_request
from powerstrip.problems import Problem

if TYPE_CHECKING:
    # redis is imported only where Redis holds the counters: importing it (with the
    # OpenTelemetry SDK it pulls in) took about a tenth of the app's startup.
    import redis
    from flask_limiter._limits import RuntimeLimit

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


def init_app(
    app: Flask,
    limiter: Limiter,
    *,
    exempt_blueprints: list[str],
    errors: tuple[type[Exception], ...] = (OSError,),
) -> None:
    """Apply the default limits to every route but the exempt blueprints.

    ``errors``: what the storage raises when unreachable (:func:`storage_errors`). Also
    reports the limiter falling back to memory and back (log, metrics when enabled).
    """
    limiter.init_app(app)
    resolve_once(limiter)
    if limiter.enabled:
        RequestLimits(app, limiter, frozenset(exempt_blueprints), errors).install()
    measured: Metrics | None = app.extensions.get(METRICS)
    app.after_request(FallbackMonitor(limiter, measured))


@dataclass(frozen=True, slots=True)
class _RouteLimit:
    """One limit of a route, as flask-limiter evaluates it on each request, worked out once."""

    runtime: RuntimeLimit
    cost: int
    expiry: int  # the window, in seconds
    scope: str
    before: str  # the storage key is before + the client's key + after
    after: str

    @classmethod
    def of(cls, runtime: RuntimeLimit, endpoint: str, prefix: str) -> _RouteLimit:
        item, scope = runtime.limit, runtime.scope_for(endpoint, None)
        marker = f"\x00{uuid.uuid4().hex}\x00"  # stands for the client's key
        before, after = item.key_for(*([prefix] if prefix else []), marker, scope).split(marker)
        return cls(runtime, runtime.deduction_amount, item.get_expiry(), scope, before, after)


_ITS_OWN = "its own"  # a route flask-limiter's own check handles (see RequestLimits)
_Route = tuple[_RouteLimit, ...] | str
_current_g = g._get_current_object  # flask.g's own lookup of its object, read once
_STATE = "powerstrip_rate_limit"  # in flask.g: (limit, remaining, reset) or _ITS_OWN


class RequestLimits:
    """flask-limiter's work on each request (its check, its headers), for the host's limits.

    flask-limiter works out each request's limits, keys and headers from scratch: about 500
    function calls a request (a sixth of a single task's GET, in process), and three storage round
    trips (with Redis: the counter's increment, then its value and its time to live for the
    ``X-RateLimit-*`` headers). The host's limits are plain ones (the configured defaults, per
    client address, fixed window; plugins cannot add limits to routes), so each route's are
    worked out once here, and a request costs one increment (the count it returns gives
    ``X-RateLimit-Remaining``) and, unless that increment started the window, one read of when
    the window ends.

    What the check and headers do is flask-limiter's: the same storage keys (so the counts
    carry over to and from flask-limiter's own check), the same 429 (``RateLimitExceeded``,
    logged as it logs it), the same headers, ``Retry-After`` on a 429 only (flask-limiter
    writes it on every answer, under another name here: ``_retry_after_only_on_429``).

    flask-limiter's own check (its before- and after-request hooks, which this replaces)
    still runs:

    - while its storage is unreachable: it counts in memory then, and pings the storage to go
      back to it (``_storage_dead``, read by :func:`counting_in_memory`);
    - for a request whose storage call fails here: the first marks the storage unreachable, as
      flask-limiter does, and each is counted by flask-limiter's own check, in memory (any
      other error here is logged and the request counted there too: never a 500);
    - for every route, when the limiter is configured beyond what is handled here (meta
      limits, request filters, a strategy but the fixed window, no in-memory fallback...),
      for a route with limits of its own (``limiter.limit``), and for a route whose limits are
      beyond plain ones (a cost or scope worked out per request, limits per method,
      ``exempt_when`` or ``deduct_when``, a breach callback, shared limits).

    The exempt blueprints' requests reach neither check: no limit, no ``X-RateLimit-*``
    headers. ``limiter.current_limit`` is flask-limiter's own check's: nothing here fills it
    in (nothing in the host reads it).
    """

    def __init__(
        self,
        app: Flask,
        limiter: Limiter,
        exempt: frozenset[str],
        errors: tuple[type[Exception], ...] = (OSError,),
    ) -> None:
        """``errors``: what the storage raises when unreachable (:func:`storage_errors`)."""
        self._app = app
        self._limiter = limiter
        self._exempt = exempt
        self._errors = errors
        self._routes: dict[str | None, _Route] = {}
        self._lock = threading.Lock()
        self._check = limiter._check_request_limit  # flask-limiter's hooks (see install)
        self._headers = _their_headers(app, limiter)
        self._release = limiter._Limiter__release_context  # type: ignore[attr-defined]
        self._logger = limiter.logger
        names = limiter._header_mapping  # filled in by init_app
        self._names = (
            names[HeaderNames.LIMIT],
            names[HeaderNames.REMAINING],
            names[HeaderNames.RESET],
        )
        self._plain = (
            isinstance(limiter.limiter, FixedWindowRateLimiter)
            and limiter._in_memory_fallback_enabled
            and limiter._fail_on_first_breach
            and limiter._headers_enabled
            and not limiter._meta_limits
            and not limiter._request_filters
            and limiter._on_breach is None
            and limiter._retry_after != "http-date"
        )

    def install(self) -> None:
        """Put these hooks where ``limiter.init_app`` put flask-limiter's own (its before- and
        after-request hooks and its teardown, all three: startup fails if one is missing)."""
        app = self._app
        _replace(app.before_request_funcs.get(None, []), self._check, self.check)
        _replace(app.after_request_funcs.get(None, []), self._headers, self.headers)
        _replace(app.teardown_request_funcs.get(None, []), self._release, None)

    def check(self) -> None:
        """Count the request against its route's limits; a 429 past one of them."""
        endpoint = current_request().endpoint
        route = self._routes.get(endpoint)
        if route is None:
            route = self._route(endpoint)
        if not route:  # exempt, or no limits
            return
        if isinstance(route, str) or self._limiter._storage_dead:  # str: _ITS_OWN
            self._their_check()
            return
        try:
            self._count(route)
        except RateLimitExceeded:
            raise
        except self._errors:  # flask-limiter's own check counts in memory from now on
            if not self._limiter._storage_dead:
                self._logger.warning(
                    "Rate limit storage unreachable - falling back to in-memory storage"
                )
                self._limiter._storage_dead = True
            self._their_check()
        except Exception:  # never a 500 for limiting: flask-limiter's own check counts it
            self._logger.exception("Rate limit check failed; flask-limiter's own check counts it")
            self._their_check()

    def headers(self, response: Response) -> Response:
        """The ``X-RateLimit-*`` headers of the request's limit; ``Retry-After`` on a 429."""
        state = _current_g().pop(_STATE, None)
        if state is None:
            return response
        if state is _ITS_OWN:
            response = _retry_after_only_on_429(self._headers(response))
            self._release()
            return response
        amount, remaining, reset_at = state
        headers = response.headers
        limit_name, remaining_name, reset_name = self._names
        headers.add(limit_name, amount)
        headers.add(remaining_name, remaining)
        headers.add(reset_name, str(reset_at))
        if response.status_code == 429:
            retry_at = _retry_at(headers.get("Retry-After"), reset_at)
            if retry_at is not None:
                headers["Retry-After"] = str(int(retry_at - time.time()))
        return response

    def _count(self, route: tuple[_RouteLimit, ...]) -> None:
        """flask-limiter's evaluation of plain limits (smallest window first, stopping at the
        first breached; the headers name that one, else the first): one increment each."""
        key = self._limiter._key_func()
        if not key:
            self._logger.error("Skipping limits: the request's key is empty.")
            return
        storage = self._limiter.storage
        shown: tuple[_RouteLimit, str, int] | None = None
        for limit in route:
            stored = limit.before + key + limit.after
            count = storage.incr(stored, limit.expiry, amount=limit.cost)
            if shown is None or count > limit.runtime.limit.amount:
                shown = (limit, stored, count)
            if count > limit.runtime.limit.amount:
                break
        assert shown is not None  # noqa: S101 - a route here has a limit
        limit, stored, count = shown
        amount = limit.runtime.limit.amount
        # The window's end: now plus its length if this increment started it, else read back.
        ends = time.time() + limit.expiry if count == limit.cost else storage.get_expiry(stored)
        g.powerstrip_rate_limit = (str(amount), str(max(0, amount - count)), int(ends + 1))
        if count > amount:
            self._logger.info(
                "ratelimit %s (%s) exceeded at endpoint: %s", limit.runtime.limit, key, limit.scope
            )
            raise RateLimitExceeded(limit.runtime)

    def _their_check(self) -> None:
        g.powerstrip_rate_limit = _ITS_OWN
        self._check()

    def _route(self, endpoint: str | None) -> _Route:
        """A route's limits, worked out on its first request; () when it has none."""
        with self._lock:
            route = self._routes.get(endpoint)
            if route is None:
                route = self._routes[endpoint] = self._resolve(endpoint)
        return route

    def _resolve(self, endpoint: str | None) -> _Route:
        if not endpoint or endpoint.split(".")[-1] == "static":  # as flask-limiter exempts
            return ()
        blueprint = endpoint.rpartition(".")[0] or None
        if blueprint in self._exempt:
            return ()
        limiter, app = self._limiter, self._app
        view = app.view_functions.get(endpoint)
        name = get_qualified_name(view) if view else ""
        marked = name in limiter._marked_for_limiting or limiter.limit_manager.has_hints(endpoint)
        if not self._plain or marked:  # marked: limits of its own (limiter.limit)
            return _ITS_OWN
        defaults, decorated = limiter.limit_manager.resolve_limits(
            app, endpoint, blueprint, name, True, marked
        )
        limits = sorted([*dict.fromkeys(defaults), *decorated], key=lambda lim: lim.limit)
        if any(not _plain(limit, limiter) for limit in limits):
            return _ITS_OWN
        prefix = limiter._key_prefix
        return tuple(_RouteLimit.of(limit, endpoint, prefix) for limit in limits)  # (): none


def _their_headers(app: Flask, limiter: Limiter) -> Callable[[Response], Response]:
    """The after-request hook ``limiter.init_app`` registered: ``partial(inject, limiter)``."""
    inject = getattr(Limiter, "_Limiter__inject_headers", None)
    for hook in app.after_request_funcs.get(None, []):
        if isinstance(hook, partial) and hook.func is inject and hook.args == (limiter,):
            return cast("Callable[[Response], Response]", hook)
    raise RuntimeError("flask-limiter registered no after-request hook (4.x does)")


def _replace(hooks: list[Any], theirs: object, ours: object | None) -> None:
    """Put ``ours`` in ``theirs``' place among ``hooks`` (None: take it out)."""
    if theirs not in hooks:
        raise RuntimeError(f"flask-limiter registered no hook {theirs!r} (4.x does)")
    if ours is None:
        hooks.remove(theirs)
    else:
        hooks[hooks.index(theirs)] = ours


def _plain(limit: RuntimeLimit, limiter: Limiter) -> bool:
    """Whether :class:`RequestLimits` evaluates ``limit`` as flask-limiter would."""
    return (
        limit.key_func is limiter._key_func
        and not callable(limit.scope)
        and not callable(limit.cost)
        and not limit.per_method
        and limit.methods is None
        and limit.exempt_when is None
        and limit.deduct_when is None
        and limit.on_breach is None
        and not limit.meta_limits
        and not limit.shared
    )


def _retry_at(existing: str | None, reset_at: int) -> float | None:
    """When a client may retry: when the window resets, or later if the answer already said so
    (a plugin's own 429), as flask-limiter works it out; None (the answer's own kept) when that
    cannot be read (flask-limiter then gives up on its headers)."""
    if existing is None:
        return reset_at
    retry_at: float | datetime.datetime | None = parse_date(existing)
    try:
        if retry_at is None:
            retry_at = time.time() + int(existing)
        if isinstance(retry_at, datetime.datetime):
            retry_at = time.mktime(retry_at.timetuple())
        return max(int(retry_at), reset_at)
    except (ValueError, OverflowError):
        return None


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
