"""OpenTelemetry: one request's span tree, a caller's trace continued, trace ids in the logs.

Spans go to an in-memory exporter (``create_app(span_exporter=...)``); in production the
``OTEL_*`` variables switch tracing on and name the exporter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app import StartupError, create_app, tracing
from app.db import DATABASE
from tests.services import REDIS_URL, require_redis

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[Flask]:
    app = create_app(
        {
            "ENVIRONMENT": "testing",
            "INSTANCE_PATH": str(tmp_path),
            "PLUGINS": ["hello"],
            "LOG_LEVEL": "INFO",
        },
        span_exporter=exporter,
    )
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    exporter.clear()
    yield app
    app.extensions[DATABASE].engine.dispose()


def server_span(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    [server] = [span for span in spans if span.kind is SpanKind.SERVER]
    return server


def test_one_request_is_a_span_tree(traced: Flask, exporter: InMemorySpanExporter) -> None:
    response = traced.test_client().post("/api/v1/hello/greetings", json={"name": "Ada"})
    assert response.status_code == 201
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    assert server.name == "POST /api/v1/hello/greetings"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/api/v1/hello/greetings"
    assert server.attributes[tracing.PLUGIN_ATTRIBUTE] == "hello"
    statements = [span for span in spans if span.kind is SpanKind.CLIENT]
    assert any(span.name.startswith("INSERT") for span in statements), [s.name for s in spans]
    for span in statements:  # every SQL statement is a child of the request's span
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
        assert span.context.trace_id == server.context.trace_id


def test_traceparent_continues_the_callers_trace(
    traced: Flask, exporter: InMemorySpanExporter
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    traced.test_client().get("/api/v1/hello/greetings/Ada", headers={"traceparent": traceparent})
    server = server_span(exporter.get_finished_spans())
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == PARENT_ID


def test_log_lines_carry_the_trace_and_span_ids(
    traced: Flask, exporter: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    capsys.readouterr()
    traced.test_client().get(
        "/api/v1/hello/greetings/Ada",
        headers={"traceparent": traceparent, "X-Request-ID": "traced-1"},
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    [access] = [record for record in records if record["logger"] == "app.access"]
    server = server_span(exporter.get_finished_spans())
    assert access["request_id"] == "traced-1"
    assert access["trace_id"] == TRACE_ID
    assert access["span_id"] == f"{server.context.span_id:016x}"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert tracing.enabled(environ) is on


def test_off_by_default(tmp_path: Path) -> None:
    app = create_app({"ENVIRONMENT": "testing", "INSTANCE_PATH": str(tmp_path), "PLUGINS": []})
    assert tracing.TRACING not in app.extensions


def test_the_otel_variables_choose_the_exporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTLP by default (nothing is sent until a span ends; none does here), or the console."""
    base = {"ENVIRONMENT": "testing", "INSTANCE_PATH": str(tmp_path), "PLUGINS": []}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "api-eu")
    provider = create_app(base).extensions[tracing.TRACING]
    assert provider.resource.attributes["service.name"] == "api-eu"
    provider.shutdown()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,zipkin")
    with pytest.raises(StartupError, match=r"^OTEL_TRACES_EXPORTER: zipkin: use otlp, console"):
        create_app(base)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(StartupError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL='grpc': this host"):
        create_app(base)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    create_app(base).extensions[tracing.TRACING].shutdown()


def test_the_console_exporter_writes_one_json_line_per_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    app = create_app(
        {"ENVIRONMENT": "testing", "INSTANCE_PATH": str(tmp_path), "PLUGINS": ["health"]}
    )
    capsys.readouterr()
    app.test_client().get("/api/v1/health/live")
    app.extensions[tracing.TRACING].shutdown()  # flushes the batch
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    spans = [line for line in lines if "context" in line]
    assert any(span.get("name") == "GET /api/v1/health/live" for span in spans)


def test_the_limiters_redis_commands_are_spans(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    require_redis()
    app = create_app(
        {
            "ENVIRONMENT": "testing",
            "INSTANCE_PATH": str(tmp_path),
            "PLUGINS": ["hello"],  # limited (health is exempt)
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "RATELIMIT_KEY_PREFIX": f"trace-{tmp_path.name}",
        },
        span_exporter=exporter,
    )
    assert app.test_client().get("/api/v1/hello/greetings/Ada").status_code == 200
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    commands = [span for span in spans if (span.attributes or {}).get("db.system") == "redis"]
    assert commands, [span.name for span in spans]
    assert all(span.parent is not None for span in commands)
    assert {span.context.trace_id for span in commands} == {server.context.trace_id}
