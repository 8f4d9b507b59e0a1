"""OpenTelemetry tracing: off by default, switched on and configured by the ``OTEL_*`` variables.

On when an exporter is named: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console`` or both, comma
separated; ``none`` is off) or an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; OTLP over HTTP, ``http/protobuf``);
``OTEL_SDK_DISABLED=true`` wins. The SDK reads the rest itself: ``OTEL_SERVICE_NAME`` (default
``powerstrip``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and its argument, the
exporter's endpoint, headers and timeout.

Each app has its own ``TracerProvider`` (never the global one). The Flask instrumentation makes
one server span per request, continuing the caller's trace from ``traceparent``; the host adds
the plugin (``powerstrip.plugin``) beside the route rule (``http.route``); the SQLAlchemy
instrumentation adds a span per statement, the Redis one per command of the limiter's client.
Spans leave through a ``BatchSpanProcessor``, whose export thread the SDK restarts in each
forked gunicorn worker.
Nothing of OpenTelemetry is imported while tracing is off.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from sqlalchemy import Engine

from app.config import ConfigError
from app.metrics import plugin_of

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACING = "powerstrip.tracing"
PLUGIN_ATTRIBUTE = "powerstrip.plugin"
DEFAULT_SERVICE_NAME = "powerstrip"


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (a comma list; OTLP over HTTP by default)."""
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip().lower() not in ("", "none")
    ] or ["otlp"]
    unknown = sorted(set(names) - {"otlp", "console"})
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER: {', '.join(unknown)}: use otlp, console or none")
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if "otlp" in names and protocol.strip() not in ("", "http/protobuf"):
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this host sends http/protobuf"
        )
    exporters: list[SpanExporter] = []
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        exporters.append(OTLPSpanExporter())
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415

        # One JSON object per line, like every other line on stdout.
        exporters.append(
            ConsoleSpanExporter(
                out=sys.stdout,  # the current one (its default is the one at import)
                formatter=lambda span: f"{span.to_json(indent=None)}\n",
            )
        )
    return exporters


def init_app(
    app: Flask,
    engine: Engine,
    owners: Mapping[str, str],
    environ: Mapping[str, str],
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Trace ``app``'s requests and ``engine``'s statements, if asked; the provider or None.

    ``exporter`` (tests, embedding) turns tracing on with spans exported as they end.
    """
    if exporter is None and not enabled(environ):
        return None
    # Imported only now: a host without tracing loads none of it.
    from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: PLC0415
    from opentelemetry.metrics import NoOpMeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        SimpleSpanProcessor,
    )

    service = environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    if exporter is None:
        for chosen in _exporters(environ):
            provider.add_span_processor(BatchSpanProcessor(chosen))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))

    def name_the_plugin(span: Any, _environ: Any) -> None:
        if span is not None and span.is_recording():
            span.set_attribute(PLUGIN_ATTRIBUTE, plugin_of(request.url_rule, owners))

    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=provider, request_hook=name_the_plugin, enable_commenter=False
    )
    # This engine only: the instrumentor's instrument() would also patch create_engine and
    # asyncio globally (and its declared range stops before SQLAlchemy 2.1, whose engine events
    # it uses unchanged: tests/app/test_tracing.py sees the statements' spans).
    usage = (
        NoOpMeterProvider()
        .get_meter(__name__)
        .create_up_down_counter("db.client.connections.usage")  # metrics are Prometheus's
    )
    EngineTracer(  # type: ignore[no-untyped-call]
        provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine, usage
    )
    app.extensions[TRACING] = provider
    return provider


def trace_redis(provider: TracerProvider, client: object | None) -> None:
    """A span per command of this Redis client (the rate limiter's), not of every client in
    the process (RedisInstrumentor.instrument would patch the class)."""
    if client is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415

    RedisInstrumentor.instrument_client(client, tracer_provider=provider)  # type: ignore[arg-type]
