"""Prometheus metrics: RED per route and plugin, the database pool, limits, events, plugins.

Each app has its own :class:`Metrics` (its own registry: no module-level metric objects).
Under gunicorn the workers are separate processes, so prometheus-client runs in multiprocess
mode: ``gunicorn.conf.py`` gives every server start a fresh ``PROMETHEUS_MULTIPROC_DIR`` before
the app is imported, each process writes its samples there, the master marks dead workers
(:func:`mark_process_dead`) and serves the sum of every process's files on the metrics port
(:func:`serve`), never on the API port. Without that directory (``flask run``, tests) the app's
own registry holds the samples.

Labels are bounded: the plugin, the route *rule* (``/api/v1/tasks/projects/<int:project_id>``,
never the raw path), the method and the status class (``2xx``...).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from sqlalchemy import Engine, event

from app import logs
from powerstrip.http import current_request
from powerstrip.metrics import GaugeMode

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from werkzeug.routing import Rule

METRICS = "powerstrip.metrics"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
HOST_LABEL = "host"  # the plugin label of the host's own routes (docs, OpenAPI)
UNMATCHED = "<unmatched>"  # the route label of a request no rule matched (a 404 or 405)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The method label's values; any other method a client sends is counted as ``other``."""
# Request latencies: 5 ms to 10 s (RED dashboards read the p50/p95/p99 from these).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
_FAMILY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


def multiprocess_mode() -> bool:
    """Whether samples go to ``PROMETHEUS_MULTIPROC_DIR`` (set before prometheus-client is
    imported: gunicorn.conf.py does)."""
    return bool(os.environ.get(MULTIPROCESS_ENV))


@dataclass(frozen=True, slots=True)
class Metrics:
    """One app's metric families."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    in_flight: Gauge
    rejections: Counter
    limit_fallbacks: Counter
    limit_fallback: Gauge
    subscriber_failures: Counter
    pool_checked_out: Gauge
    pool_overflow: Gauge
    pool_wait: Histogram
    plugins: Gauge
    build: Gauge

    @classmethod
    def create(cls) -> Metrics:
        """Fresh families in a registry of their own."""
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            requests=Counter(
                "powerstrip_http_requests",
                "HTTP requests answered, by plugin, route rule, method and status class",
                ["plugin", "route", "method", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "powerstrip_http_request_duration_seconds",
                "Time to answer an HTTP request, by plugin, route rule and method",
                ["plugin", "route", "method"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "powerstrip_http_requests_in_flight",
                "HTTP requests being answered",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            rejections=Counter(
                "powerstrip_rate_limit_rejections",
                "Requests refused with 429 by a rate limit, by plugin",
                ["plugin"],
                registry=registry,
            ),
            limit_fallbacks=Counter(
                "powerstrip_rate_limit_storage_fallbacks",
                "Times a process fell back to in-memory rate limits (limit storage unreachable)",
                registry=registry,
            ),
            limit_fallback=Gauge(
                "powerstrip_rate_limit_storage_fallback",
                "Processes counting rate limits in memory because the limit storage failed",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            subscriber_failures=Counter(
                "powerstrip_event_subscriber_failures",
                "Event deliveries whose subscriber raised, by event type",
                ["event"],
                registry=registry,
            ),
            pool_checked_out=Gauge(
                "powerstrip_db_pool_checked_out",
                "Database connections in use",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            pool_overflow=Gauge(
                "powerstrip_db_pool_overflow",
                "Database connections open beyond the pool size",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            pool_wait=Histogram(
                "powerstrip_db_pool_wait_seconds",
                "Time to get a database connection from the pool (opening one included)",
                buckets=WAIT_BUCKETS,
                registry=registry,
            ),
            plugins=Gauge(
                "powerstrip_plugin_state",
                "1 for each installed plugin, labelled with its version and state",
                ["plugin", "version", "state"],
                registry=registry,
                multiprocess_mode="max",
            ),
            build=Gauge(
                "powerstrip_build_info",
                "1, labelled with the host's version",
                ["version"],
                registry=registry,
                multiprocess_mode="max",
            ),
        )

    def exposition(self) -> bytes:
        """The text format of every sample: every process's under multiprocess mode."""
        if multiprocess_mode():
            return generate_latest(collecting_registry())
        return generate_latest(self.registry)

    def record_plugins(self, host_version: str, states: Iterable[tuple[str, str, str]]) -> None:
        """The build info and each plugin's ``(name, version, state)``."""
        self.build.labels(version=host_version).set(1)
        for name, version, state in states:
            self.plugins.labels(plugin=name, version=version, state=state).set(1)

    def instrument_pool(self, engine: Engine) -> None:
        """Count the connections in use and in overflow (the wait: ``make_engine(on_wait=)``).

        Pool events: they survive ``engine.dispose()``, which recreates the pool after a fork.
        """
        checked_out, overflow = self.pool_checked_out, self.pool_overflow

        def sample_overflow() -> None:
            pool: Any = engine.pool  # the current one: dispose() replaces it
            overflow.set(max(getattr(pool, "overflow", lambda: 0)(), 0))

        def on_checkout(*_: Any) -> None:
            checked_out.inc()
            sample_overflow()

        def on_checkin(*_: Any) -> None:
            checked_out.dec()
            sample_overflow()  # back down after a burst

        event.listen(engine, "checkout", on_checkout)
        event.listen(engine, "checkin", on_checkin)


class PluginFamilies:
    """A plugin's :class:`~powerstrip.metrics.PluginMetrics`: families named ``<plugin>_...``
    in the app's registry (under gunicorn, summed across workers like the host's)."""

    def __init__(self, plugin: str, registry: CollectorRegistry) -> None:
        self._prefix = f"{plugin}_"
        self._registry = registry

    @classmethod
    def of(cls, plugin: str, measured: Metrics | None) -> PluginFamilies:
        """The plugin's families in the app's registry; with metrics off, in one nobody reads
        (the plugin's code works the same)."""
        return cls(plugin, measured.registry if measured is not None else CollectorRegistry())

    def _name(self, name: str) -> str:
        if not _FAMILY_NAME.fullmatch(name):
            raise ValueError(f"metric name {name!r}: use a-z, 0-9 and _, starting with a letter")
        return self._prefix + name

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter, ``<plugin>_<name>_total``."""
        return Counter(self._name(name), documentation, list(labels), registry=self._registry)

    def gauge(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        mode: GaugeMode = "livesum",
    ) -> Gauge:
        """A gauge, ``<plugin>_<name>``; ``mode``: how workers' values combine."""
        return Gauge(
            self._name(name),
            documentation,
            list(labels),
            registry=self._registry,
            multiprocess_mode=mode,
        )

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] | None = None,
    ) -> Histogram:
        """A histogram, ``<plugin>_<name>``."""
        return Histogram(
            self._name(name),
            documentation,
            list(labels),
            registry=self._registry,
            buckets=tuple(buckets) if buckets is not None else Histogram.DEFAULT_BUCKETS,
        )


def collecting_registry() -> CollectorRegistry:
    """A registry summing every process's samples in ``PROMETHEUS_MULTIPROC_DIR``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def plugin_of(rule: Rule | None, owners: Mapping[str, str]) -> str:
    """The plugin serving a route rule (``owners``: blueprint -> plugin), else ``host``."""
    blueprint = rule.endpoint.partition(".")[0] if rule is not None else ""
    return owners.get(blueprint, HOST_LABEL)


class InFlight:
    """WSGI middleware: a request is in the in-flight gauge from the moment it comes in until
    the app has returned its answer (Flask has run its teardown hooks by then; a streamed
    body may still be on its way). A WSGI layer rather than a before-request and a teardown
    hook: no hook to call and no request proxy to ask, twice a request."""

    def __init__(self, wsgi_app: WSGIApplication, gauge: Gauge) -> None:
        self._wsgi_app = wsgi_app
        self._gauge = gauge

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        gauge = self._gauge
        gauge.inc()
        try:
            return self._wsgi_app(environ, start_response)
        finally:
            gauge.dec()


def init_app(app: Flask, metrics: Metrics, owners: Mapping[str, str]) -> None:
    """Measure every request: count, latency and in-flight, by plugin and route rule.

    ``owners``: blueprint name -> plugin name (the host's own routes are ``host``). The
    latency counts from the moment :class:`~app.logs.RequestIds` (``logs.init_app``) saw the
    request come in, as the access record's duration does; a request it never saw (a test's
    request context) counts from its after-request hook.
    """
    app.extensions[METRICS] = metrics
    requests, latency, rejections = metrics.requests, metrics.latency, metrics.rejections
    # (rule, method, status class) -> its label children and plugin: labels() validates and
    # locks on every call; the keys are bounded (the app's rules, its methods, five classes).
    # A rule by its id: werkzeug's rules are not hashable, and live as long as the app.
    children: dict[tuple[int, str, int], tuple[Any, Any, str]] = {}

    def finish(response: Response) -> Response:
        handled = current_request()
        started = logs.request_started(handled.environ)
        rule, status = handled.url_rule, response.status_code
        method = handled.method if handled.method in METHODS else "other"  # clients choose it
        key = (id(rule), method, status // 100)
        found = children.get(key)
        if found is None:
            route = rule.rule if rule is not None else UNMATCHED
            plugin = plugin_of(rule, owners)
            found = children[key] = (
                requests.labels(plugin, route, method, f"{status // 100}xx"),
                latency.labels(plugin, route, method),
                plugin,
            )
        count, timing, plugin = found
        count.inc()
        timing.observe(time.perf_counter() - started)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            rejections.labels(plugin).inc()
        return response

    app.after_request(finish)
    app.wsgi_app = InFlight(app.wsgi_app, metrics.in_flight)  # type: ignore[method-assign]


def serve(metrics_host: str, metrics_port: int, api_binds: Sequence[str] = ()) -> WSGIServer:
    """Serve every process's samples on ``metrics_host:metrics_port`` from a thread of the
    calling process (the gunicorn master); port 0 picks a free one (``server_address``).

    Refuses (ValueError) the port of one of ``api_binds`` (gunicorn's ``host:port``): the
    workers bind their own sockets after the master, so the metrics would take the API's port.
    """
    api_ports = {bind.rpartition(":")[2] for bind in api_binds}
    if metrics_port and str(metrics_port) in api_ports:
        raise ValueError(f"METRICS_PORT {metrics_port} is the API's port ({', '.join(api_binds)})")
    server, _thread = start_http_server(
        metrics_port, addr=metrics_host, registry=collecting_registry()
    )
    return server


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (in flight, pool) from the sums."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
