"""Prometheus metrics in one process: RED by plugin and route rule, the pool, limits, events.

Across gunicorn workers (multiprocess mode, the metrics port): tests/test_gunicorn.py.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, Response
from sqlalchemy import text

from app import metrics
from app.metrics import METRICS, Metrics, PluginFamilies
from powerstrip import EventBus
from powerstrip.testing import AppFactory
from tests.support import parse_samples

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

HELLO = "/api/v1/hello/greetings"


def samples(app: Flask) -> dict[str, float]:
    """``name{label="value",...}`` (labels sorted) -> value, from the app's exposition."""
    measured: Metrics = app.extensions[METRICS]
    return parse_samples(measured.exposition().decode())


def test_requests_are_counted_by_plugin_route_rule_and_status_class(
    powerstrip_make_app: AppFactory,
) -> None:
    app = powerstrip_make_app("hello", "health")
    client = app.test_client()
    stored = client.post(HELLO, json={"name": "Ada"}).get_json()
    for greeting_id in (stored["id"], 999999, 999998):
        client.get(f"{HELLO}/by-id/{greeting_id}")
    client.get("/no/such/path")
    found = samples(app)
    by_id = 'method="GET",plugin="hello",route="/api/v1/hello/greetings/by-id/<int:greeting_id>"'
    assert found[f'powerstrip_http_requests_total{{{by_id},status="2xx"}}'] == 1
    assert found[f'powerstrip_http_requests_total{{{by_id},status="4xx"}}'] == 2  # one series
    assert found[f"powerstrip_http_request_duration_seconds_count{{{by_id}}}"] == 3
    unmatched = 'method="GET",plugin="host",route="<unmatched>",status="4xx"'
    assert found[f"powerstrip_http_requests_total{{{unmatched}}}"] == 1
    assert not any("999999" in name for name in found)  # never the raw path
    assert found["powerstrip_http_requests_in_flight"] == 0


def test_a_request_is_in_flight_until_it_is_answered(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("health")
    during: list[float] = []

    @app.route("/probe/in-flight")
    def probe() -> str:
        during.append(samples(app)["powerstrip_http_requests_in_flight"])
        return "ok"

    @app.route("/probe/fails")
    def fails() -> str:
        during.append(samples(app)["powerstrip_http_requests_in_flight"])
        raise RuntimeError("a view's bug")

    class Unsendable(Response):
        def __call__(self, _environ: WSGIEnvironment, _start: StartResponse) -> Any:
            raise RuntimeError("an answer that cannot be sent")

    @app.route("/probe/escapes")
    def escapes() -> Response:
        during.append(samples(app)["powerstrip_http_requests_in_flight"])
        return Unsendable("x")

    client = app.test_client()
    assert client.get("/probe/in-flight").status_code == 200
    assert samples(app)["powerstrip_http_requests_in_flight"] == 0
    assert client.get("/probe/fails").status_code == 500  # the app's own error handler
    assert samples(app)["powerstrip_http_requests_in_flight"] == 0
    # Out of the app, through every middleware: the outermost (LastResort) answers it.
    assert client.get("/probe/escapes").status_code == 500
    assert during == [1, 1, 1]
    assert samples(app)["powerstrip_http_requests_in_flight"] == 0


def test_latency_counts_from_the_request_coming_in(
    powerstrip_make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the access record's duration does: from the moment RequestIds saw it come in,
    before Flask's own work and every before-request hook (a clock that reads 100.0 once,
    then 100.25)."""
    app = powerstrip_make_app("health")
    client = app.test_client()
    readings = iter([100.0])
    monkeypatch.setattr(time, "perf_counter", lambda: next(readings, 100.25))
    assert client.get("/api/v1/health/live").status_code == 200
    monkeypatch.undo()
    live = 'method="GET",plugin="health",route="/api/v1/health/live"'
    found = samples(app)
    assert found[f"powerstrip_http_request_duration_seconds_sum{{{live}}}"] == 0.25
    assert found[f'powerstrip_http_request_duration_seconds_bucket{{le="0.25",{live}}}'] == 1
    assert found[f'powerstrip_http_request_duration_seconds_bucket{{le="0.1",{live}}}'] == 0


def test_rate_limit_rejections_are_counted_by_plugin(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("hello", config={"RATELIMIT_DEFAULT": ["2/minute"]})
    client = app.test_client()
    statuses = [client.get(f"{HELLO}/Ada").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert samples(app)['powerstrip_rate_limit_rejections_total{plugin="hello"}'] == 1


def test_the_pool_is_measured(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("hello", migrated=False)
    engine = app.extensions["powerstrip.database"].engine
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        assert samples(app)["powerstrip_db_pool_checked_out"] == 1
    found = samples(app)
    assert found["powerstrip_db_pool_checked_out"] == 0
    assert found["powerstrip_db_pool_overflow"] == 0
    assert found["powerstrip_db_pool_wait_seconds_count"] == 1
    engine.dispose()  # a new pool, as each gunicorn worker makes after the fork
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        assert samples(app)["powerstrip_db_pool_checked_out"] == 1
    assert samples(app)["powerstrip_db_pool_wait_seconds_count"] == 2


def test_subscriber_failures_are_counted_by_event(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("hello")

    def fail(_event: object) -> None:
        raise RuntimeError("a subscriber's bug")

    bus: EventBus = app.extensions["powerstrip.injector"].get(EventBus)
    bus.subscribe(Path, fail)
    bus.publish(Path("x"))  # outside a unit of work: delivered at once; the failure is logged
    assert samples(app)['powerstrip_event_subscriber_failures_total{event="PosixPath"}'] == 1


def test_build_info_and_plugin_states(powerstrip_make_app: AppFactory) -> None:
    found = samples(powerstrip_make_app("hello"))
    assert found['powerstrip_build_info{version="0.1.0"}'] == 1
    assert found['powerstrip_plugin_state{plugin="hello",state="enabled",version="0.1.0"}'] == 1
    assert found['powerstrip_plugin_state{plugin="tasks",state="disabled",version="0.1.0"}'] == 1


def test_metrics_can_be_switched_off(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("hello", config={"METRICS_ENABLED": False})
    assert METRICS not in app.extensions
    assert app.test_client().get(f"{HELLO}/Ada").status_code == 200


def test_multiprocess_mode_serves_every_process_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the gunicorn master does, in this process: the directory's samples, served."""
    monkeypatch.setenv(metrics.MULTIPROCESS_ENV, str(tmp_path))
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    metrics.mark_process_dead(4242)  # a dead worker's live gauges leave the sums
    assert not (tmp_path / "gauge_livesum_4242.db").exists()
    server = metrics.serve("127.0.0.1", 0, ["127.0.0.1:8000"])
    try:
        host, port = server.server_address[:2]
        with urllib.request.urlopen(f"http://{host}:{port}/metrics") as answer:
            assert (answer.status, answer.read()) == (200, b"")  # no process wrote samples
    finally:
        server.shutdown()
        server.server_close()


def test_the_metrics_port_is_never_the_apis() -> None:
    with pytest.raises(ValueError, match=r"^METRICS_PORT 8000 is the API's port \(0.0.0.0:8000\)"):
        metrics.serve("127.0.0.1", 8000, ["0.0.0.0:8000"])


def test_a_method_no_route_knows_is_counted_as_other(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("hello")
    client = app.test_client()
    for method in ("FOO", "BAR", "GET"):
        client.open("/no/such/path", method=method)
    found = samples(app)
    unmatched = 'plugin="host",route="<unmatched>",status="4xx"'
    assert found[f'powerstrip_http_requests_total{{method="other",{unmatched}}}'] == 2
    assert found[f'powerstrip_http_requests_total{{method="GET",{unmatched}}}'] == 1
    assert not any("FOO" in name for name in found)


def test_a_plugin_s_families_carry_its_name(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("hello")
    families = PluginFamilies.of("hello", app.extensions[METRICS])
    families.gauge("queue_depth", "Greetings waiting", ["kind"]).labels("x").set(3)
    families.histogram("wording_seconds", "Time to word", buckets=[0.1, 1.0]).observe(0.5)
    found = samples(app)
    assert found['hello_queue_depth{kind="x"}'] == 3
    assert found['hello_wording_seconds_bucket{le="1.0"}'] == 1
    with pytest.raises(ValueError, match="metric name 'Bad-Name': use a-z"):
        families.counter("Bad-Name", "No")


def test_a_plugin_s_families_work_with_metrics_off() -> None:
    counter = PluginFamilies.of("hello", None).counter("greetings_stored", "Greetings stored")
    counter.inc()
    assert counter.collect()[0].samples[0].value == 1  # counted, in a registry nobody exports
