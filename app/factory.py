"""The composition root: ``create_app`` builds the whole application."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import injector
from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.wrappers import Response as WerkzeugResponse

from app import (
    api,
    auth,
    composition,
    config,
    errors,
    hosts,
    idempotency,
    jsonio,
    loader,
    logs,
    metrics,
    migrations,
    ratelimit,
    security,
    tracing,
)
from app.cli import config_command, idempotency_command
from app.db import DATABASE, Database, DatabaseModule, make_engine
from app.loader import PluginError, PluginRecord
from powerstrip.auth import Authenticator
from powerstrip.cli import INJECTOR
from powerstrip.contracts import Clock
from powerstrip.events import EventBus
from powerstrip.plugin import InjectorModule, PluginContext

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

HOST_CONFIG = "powerstrip.config"
PLUGINS = "powerstrip.plugins"
API = "powerstrip.api"

log = logging.getLogger(__name__)


class NoCookieSessions(SessionInterface):
    """No ``flask.session``: the API is stateless (bearer tokens, API keys), none of it reads
    a session cookie, and a plugin that writes one fails loudly (Flask's ``NullSession``
    raises) instead of setting a cookie nobody expects.

    Flask's cookie sessions built a signing serializer and parsed the Cookie header on every
    request (about 40 function calls) only to find nothing.
    """

    def open_session(self, app: Flask, request: Request) -> None:
        """No session: Flask hands out a ``NullSession`` instead."""

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Never called: Flask saves no ``NullSession``."""


# A path werkzeug's ``iri_to_uri`` returns as it is: one leading ``/`` (``//`` would name a
# host), then only characters its quoting of a path keeps.
_PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
# The headers werkzeug quotes, by their lower-case names; it writes the names as here.
_QUOTED = {"location": "Location", "content-location": "Content-Location"}


class PowerstripResponse(Response):
    """Flask's response, handed to the server without werkzeug's copy of its headers where
    that copy would be the same list.

    werkzeug's ``get_wsgi_headers`` copies every header into a new ``Headers`` (validating
    each again), quotes ``Location`` and ``Content-Location`` (``iri_to_uri``; it keeps one of
    each, so named), drops what a 1xx, 204 or 304 answer must not carry and works out a
    missing ``Content-Length``: 133 function calls of an insert's answer. An answer of any
    other status, with its ``Content-Length``, at most one ``Location`` and one
    ``Content-Location`` (so named), each a path ``iri_to_uri`` leaves as it is, goes out with
    a copy of its own header list; any other answer goes werkzeug's way.
    ``tests/app/test_flask_class.py`` holds the two side by side (a werkzeug upgrade that
    changes its way fails there).
    """

    @classmethod
    def force_type(
        cls, response: WerkzeugResponse, environ: WSGIEnvironment | None = None
    ) -> Response:
        """A view's own ``flask.Response`` (a subclass a plugin made, say) as it is, as Flask
        keeps one of its ``response_class``: werkzeug's ``force_type`` would make it this
        class, and its overrides would be lost. Anything else as werkzeug converts it."""
        if isinstance(response, Response):
            return response
        return cast(Response, super().force_type(response, environ))  # made this class

    def get_wsgi_response(
        self, environ: WSGIEnvironment
    ) -> tuple[Iterable[bytes], str, list[tuple[str, str]]]:
        status = self.status_code
        if status < 200 or status in (204, 304) or self.autocorrect_location_header:
            return super().get_wsgi_response(environ)
        headers = list(self.headers)  # each header validated as it was set; a list of its own
        length = False
        quoted: set[str] = set()
        for key, value in headers:
            lowered = key.lower()
            if lowered == "content-length":
                length = True
            elif lowered in _QUOTED:
                if (
                    lowered in quoted
                    or key != _QUOTED[lowered]
                    or _PLAIN_PATH.fullmatch(value) is None
                ):
                    return super().get_wsgi_response(environ)
                quoted.add(lowered)
        if not length:
            return super().get_wsgi_response(environ)
        return self.get_app_iter(environ), self.status, headers


class PowerstripFlask(Flask):
    """Flask without cookie sessions (:class:`NoCookieSessions`), asking once per hook, view
    or error handler whether it is a coroutine function, its own request hooks fused
    (:meth:`fuse_request_hooks`), and answers handed out by :class:`PowerstripResponse`.

    Flask asks ``inspect.iscoroutinefunction`` of every one of them on every request (about 25
    a request here, through ``ensure_sync``); the answer of a function never changes, so it is
    kept, for up to ``SYNCED`` functions (more: asked each time, as Flask does).
    """

    SYNCED = 4096
    session_interface = NoCookieSessions()
    response_class = PowerstripResponse

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        synced = self._synced.get(func)
        if synced is None:
            synced = super().ensure_sync(func)
            if len(self._synced) < self.SYNCED:
                self._synced[func] = synced
        return synced

    def fuse_request_hooks(self) -> None:
        """Put each list of the app's own before-request, after-request and teardown hooks
        behind one function that calls them as Flask would: in Flask's order, a before-request
        hook's answer ending the request's before-request hooks, an exception going out
        as it comes. Flask's per-hook work on every request (``ensure_sync``, its loops) is
        then done three times instead of about twenty times (the host and its extensions
        register about twenty hooks).

        ``create_app`` calls this last. A hook registered later (a test's, say) goes after the
        fused ones in its list and so runs where it would have; blueprints' hooks are not
        touched. Each fused function's ``hooks``: what it calls, in order.
        """
        before = self.before_request_funcs.get(None, [])
        if len(before) > 1:
            before[:] = [_before_request(tuple(map(self.ensure_sync, before)))]
        after = self.after_request_funcs.get(None, [])
        if len(after) > 1:  # Flask calls them last registered first
            after[:] = [_after_request(tuple(map(self.ensure_sync, reversed(after))))]
        teardown = self.teardown_request_funcs.get(None, [])
        if len(teardown) > 1:  # as after-request hooks
            teardown[:] = [_teardown_request(tuple(map(self.ensure_sync, reversed(teardown))))]


def _before_request(hooks: tuple[Callable[[], Any], ...]) -> Callable[[], Any]:
    def before_request() -> Any:
        for hook in hooks:
            answer = hook()
            if answer is not None:
                return answer
        return None

    before_request.hooks = hooks  # type: ignore[attr-defined]
    return before_request


def _after_request(
    hooks: tuple[Callable[[Response], Response], ...],
) -> Callable[[Response], Response]:
    def after_request(response: Response) -> Response:
        for hook in hooks:
            response = hook(response)
        return response

    after_request.hooks = hooks  # type: ignore[attr-defined]
    return after_request


def _teardown_request(
    hooks: tuple[Callable[[BaseException | None], None], ...],
) -> Callable[[BaseException | None], None]:
    def teardown_request(error: BaseException | None) -> None:
        for hook in hooks:
            hook(error)

    teardown_request.hooks = hooks  # type: ignore[attr-defined]
    return teardown_request


def create_app(
    overrides: Mapping[str, Any] | None = None,
    *,
    modules: Sequence[InjectorModule] = (),
    authenticators: Sequence[type[Authenticator]] = (),
    span_exporter: SpanExporter | None = None,
) -> Flask:
    """Build the app: defaults -> instance/config.toml -> POWERSTRIP_* env -> ``overrides``.

    Raises :class:`app.config.StartupError` (one line) if the configuration is invalid or, in
    strict mode, if a plugin is broken.

    :param modules: injector modules installed after every plugin's, so their bindings win:
        how a test binds a fake for a chosen interface (``powerstrip.testing`` passes them)
    :param authenticators: asked before the plugins' authenticators; for tests only (the test
        caller of ``powerstrip.testing``): a plugin contributes its own through ``Plugin``
    :param span_exporter: traces every request into it, whatever ``OTEL_*`` says (tests, an
        embedding program); otherwise tracing follows the ``OTEL_*`` variables (app.tracing)
    """
    extras = _Extras(tuple(modules), tuple(authenticators), span_exporter)
    app = _build(overrides, extras, excluded={})
    # Outermost: an exception a middleware (or an error handler) lets out is a problem too.
    app.wsgi_app = errors.LastResort(  # type: ignore[method-assign]
        app.wsgi_app, headers=security.SECURITY_HEADERS
    )
    return app


@dataclass(frozen=True, slots=True)
class _Extras:
    """What the caller of ``create_app`` adds to the plugins' contributions."""

    modules: tuple[InjectorModule, ...]
    authenticators: tuple[type[Authenticator], ...]
    span_exporter: SpanExporter | None = None


def _build(overrides: Mapping[str, Any] | None, extras: _Extras, excluded: dict[str, str]) -> Flask:
    app = PowerstripFlask("app", instance_path=config.instance_path(overrides, os.environ))
    app.url_map.converters["int"] = api.IdConverter  # before any route: ids fit 64 bits
    host_config, sections = config.load(Path(app.instance_path), overrides)
    logs.configure_logging(host_config.LOG_LEVEL)
    app.config.update(
        SECRET_KEY=host_config.SECRET_KEY,
        MAX_CONTENT_LENGTH=host_config.MAX_CONTENT_LENGTH,
        TESTING=host_config.ENVIRONMENT == "testing",
    )
    app.json = jsonio.JSONProvider(app)
    app.extensions[HOST_CONFIG] = host_config
    if not host_config.DATABASE_URL:  # the default database is a file in the instance folder
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    measured = metrics.Metrics.create() if host_config.METRICS_ENABLED else None
    engine = make_engine(
        host_config.database_url,
        pool=host_config.database_pool,
        on_wait=measured.pool_wait.observe if measured is not None else None,
        read_timeout=host_config.DATABASE_READ_TIMEOUT or None,
        prepare_threshold=host_config.DATABASE_PREPARE_THRESHOLD,  # 0: never
        sqlite_synchronous=host_config.DATABASE_SQLITE_SYNCHRONOUS,
        ping_after_idle=host_config.DATABASE_PING_AFTER_IDLE,
    )
    database = Database(engine)
    app.extensions[DATABASE] = database
    if measured is not None:
        measured.instrument_pool(database.engine)
    smorest = api.init_app(app)
    app.extensions[API] = smorest
    app.cli.add_command(config_command)
    app.cli.add_command(idempotency_command)

    records, enabled = _discover(host_config, sections, excluded)
    api.document_security(smorest, enabled)
    events = EventBus(on_failure=_count_failure(measured))
    limiter = ratelimit.make_limiter(host_config)
    namespace = f"{host_config.RATELIMIT_KEY_PREFIX}:plugins"
    core = [
        composition.CoreModule(
            host_config,
            events,
            ratelimit.health_checks(host_config),
            ratelimit.LimiterRateLimits(limiter, namespace, ratelimit.storage_errors(host_config)),
            loader.Registry.of(records, [record.name for record in enabled]),
        ),
        auth.AuthModule(),
        DatabaseModule(database),
    ]
    app.extensions[PLUGINS] = records
    try:
        owners = _compose(app, smorest, host_config, enabled, core, extras.modules)
    except PluginError as exc:
        if host_config.PLUGINS_STRICT:
            raise
        # Flask cannot unregister routes: build again without the plugin that broke.
        return _build(overrides, extras, {**excluded, exc.plugin: exc.cause})
    for record in records.values():
        if record.state == "failed":
            log.error("plugin skipped", extra={"plugin": record.name, "reason": record.reason})

    # Host hooks come after FlaskInjector, which would otherwise wrap each in injection.
    logs.init_app(app)  # first: the access record's hook runs after every other one
    traced = _observe(app, database, owners, records, measured, extras.span_exporter)
    hosts.init_app(app, host_config)  # a refused Host is measured and logged; nothing else runs
    errors.init_app(app)
    database.init_app(app)
    migrations.init_app(app, enabled)
    exempt = [api.SPEC_BLUEPRINT, api.DOCS_BLUEPRINT]
    exempt += [name for name, owner in owners.items() if records[owner].plugin_exempt]
    ratelimit.init_app(
        app, limiter, exempt_blueprints=exempt, errors=ratelimit.storage_errors(host_config)
    )
    if traced is not None:
        tracing.trace_redis(traced, ratelimit.redis_client(limiter))
    security.init_app(app, host_config)
    # After the limiter: a flood is refused before any credential is looked up.
    auth.init_app(
        app,
        app.extensions[INJECTOR],
        [
            *extras.authenticators,
            *(authenticator for _, authenticator in composition.authenticators(enabled)),
        ],
    )
    _set_up_plugins(app, enabled, events, measured)
    # After authentication (keys are the caller's) and after every route exists.
    idempotency.init_app(
        app,
        database,
        app.extensions[INJECTOR].get(Clock),
        ttl=timedelta(seconds=host_config.IDEMPOTENCY_KEY_TTL),
        lock_timeout=timedelta(seconds=host_config.IDEMPOTENCY_LOCK_TIMEOUT),
    )
    app.extensions[PLUGINS] = _with_route_counts(app, records, owners)
    app.fuse_request_hooks()
    return app


def _set_up_plugins(
    app: Flask, enabled: Sequence[PluginRecord], events: EventBus, measured: metrics.Metrics | None
) -> None:
    """Run each enabled plugin's ``setup`` with its context (settings, metrics families)."""
    for record in enabled:
        if record.plugin is not None and record.plugin.setup is not None:
            families = metrics.PluginFamilies.of(record.name, measured)
            record.plugin.setup(
                PluginContext(app=app, events=events, settings=record.settings, metrics=families)
            )


def _observe(
    app: Flask,
    database: Database,
    owners: Mapping[str, str],
    records: Mapping[str, PluginRecord],
    measured: metrics.Metrics | None,
    span_exporter: SpanExporter | None,
) -> TracerProvider | None:
    """Tracing (if the OTEL_* variables or ``span_exporter`` ask) and metrics (if enabled)."""
    # Before the host's other hooks: the request's span is current when they run and log.
    traced = tracing.init_app(app, database.engine, owners, os.environ, span_exporter)
    if measured is not None:  # second: its after-request hook sees the status the others leave
        metrics.init_app(app, measured, owners)
        measured.record_plugins(
            metadata.version("powerstrip"),
            ((r.name, r.version or "unknown", r.state) for r in records.values()),
        )
    return traced


def _count_failure(measured: metrics.Metrics | None) -> Callable[[object], None] | None:
    if measured is None:
        return None
    failures = measured.subscriber_failures
    return lambda event: failures.labels(type(event).__name__).inc()


def _discover(
    host_config: config.HostConfig, sections: config.Sections, excluded: dict[str, str]
) -> tuple[dict[str, PluginRecord], list[PluginRecord]]:
    """Every plugin's record and the enabled ones in load order; raises in strict mode."""
    records, order = loader.discover(
        host_version=metadata.version("powerstrip"),
        allow=host_config.PLUGINS,
        disabled=host_config.PLUGINS_DISABLED,
        sections=sections,
        excluded=excluded,
        environment=host_config.ENVIRONMENT,
    )
    for name in sections.keys() - records.keys():
        raise config.ConfigError(
            f"configuration section {name!r} (env {config.ENV_PREFIX}_{name.upper()}__*): "
            "no plugin of that name is installed"
        )
    failed = [record for record in records.values() if record.state == "failed"]
    if failed and host_config.PLUGINS_STRICT:
        # Report a root cause, not a plugin that only failed because its dependency did.
        first = min(failed, key=lambda record: (record.blocked_by is not None, record.name))
        raise PluginError(first.name, first.reason or "failed")
    return records, [records[name] for name in order]


def _compose(
    app: Flask,
    smorest: api.PowerstripApi,
    host_config: config.HostConfig,
    enabled: list[PluginRecord],
    core: list[injector.Module],
    extra: Sequence[InjectorModule],
) -> dict[str, str]:
    """Register every enabled plugin; return blueprint name -> plugin name."""
    composition.check_tables(enabled)
    owners: dict[str, str] = {}
    for record in enabled:
        plugin = record.plugin
        if plugin is None:  # pragma: no cover - enabled records always carry their plugin
            continue
        for name in composition.register_blueprints(
            app, smorest, plugin, host_config.PLUGIN_URL_PREFIX
        ):
            owners[name] = plugin.name
        if plugin.commands is not None:
            app.cli.add_command(plugin.commands, plugin.name)
    inj = composition.install_injector(app, core, enabled, owners, extra)
    app.extensions[INJECTOR] = inj
    inj.get(EventBus).use_resolver(inj.get)
    return owners


def _with_route_counts(
    app: Flask, records: dict[str, PluginRecord], owners: Mapping[str, str]
) -> dict[str, PluginRecord]:
    counts: dict[str, int] = {}
    for rule in app.url_map.iter_rules():
        owner = owners.get(rule.endpoint.partition(".")[0])
        if owner is not None:
            counts[owner] = counts.get(owner, 0) + 1
    return {name: record.with_routes(counts.get(name, 0)) for name, record in records.items()}
