"""JSON logging, the request id and the access record."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing
import os
import random
import re
import select
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from enum import StrEnum
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace

import flask
import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from gunicorn.config import Config
from gunicorn.instrument.statsd import Statsd
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonjsonlogger.orjson import OrjsonFormatter

from app import logs
from app.gunicorn_logger import GunicornLogger
from app.logs import (
    REQUEST_ID_HEADER,
    JsonLines,
    ListeningFilter,
    RequestIdFilter,
    StdoutHandler,
    configure_logging,
    logging_config,
    new_request_id,
    request_id,
)
from tests.conftest import AppFactory
from tests.spies import record_calls

UUID_HEX = 32


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "app.access"]


def test_well_formed_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/api/openapi.json", headers={REQUEST_ID_HEADER: "abc.DEF:1-2_3"})
    assert response.headers[REQUEST_ID_HEADER] == "abc.DEF:1-2_3"


def test_malformed_request_id_is_replaced(make_app: AppFactory) -> None:
    # One app for every example: building one per example made the test slow enough to
    # miss Hypothesis's deadline on a loaded machine.
    client = make_app(RATELIMIT_ENABLED=False).test_client()

    @settings(deadline=None)
    @given(st.text(max_size=200))
    def check(header: str) -> None:
        encoded = (
            header.encode("latin-1", "replace")
            .decode("latin-1")
            .replace("\r", "")
            .replace("\n", "")
        )
        response = client.get("/api/openapi.json", headers={REQUEST_ID_HEADER: encoded})
        echoed = response.headers[REQUEST_ID_HEADER]
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", encoded):
            assert echoed == encoded
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", echoed)

    check()


def test_missing_request_id_is_generated(client: FlaskClient) -> None:
    first = client.get("/api/openapi.json").headers[REQUEST_ID_HEADER]
    second = client.get("/api/openapi.json").headers[REQUEST_ID_HEADER]
    assert len(first) == UUID_HEX
    assert first != second


def test_one_access_record_per_request(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        client.post(
            "/api/probe/items", json={"name": "a", "count": 1}, headers={"X-Request-ID": "r1"}
        )
    [record] = access_records(caplog)
    assert record.method == "POST"  # type: ignore[attr-defined]
    assert record.route == "/api/probe/items"  # type: ignore[attr-defined]
    assert record.path == "/api/probe/items"  # type: ignore[attr-defined]
    assert record.status == 201  # type: ignore[attr-defined]
    assert record.request_id == "r1"  # type: ignore[attr-defined]
    assert record.remote_addr == "127.0.0.1"  # type: ignore[attr-defined]
    assert 0 <= record.duration_ms < 10_000  # type: ignore[attr-defined]
    # Where it was made, as Logger.info() would have found it (for formats that print it).
    assert (record.funcName, record.module) == ("_finish_request", "logs")
    assert record.lineno > 0


def test_access_record_for_unrouted_path_has_no_rule(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        client.get("/missing")
    [record] = access_records(caplog)
    assert record.route is None  # type: ignore[attr-defined]
    assert record.status == 404  # type: ignore[attr-defined]


def test_records_logged_during_a_request_carry_its_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        client.post(
            "/api/probe/items", json={"name": "a", "count": 1}, headers={"X-Request-ID": "r2"}
        )
    [record] = [r for r in caplog.records if r.name == "tests.probe"]
    assert record.request_id == "r2"  # type: ignore[attr-defined]


def test_log_lines_on_stdout_are_json(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.get("/api/openapi.json", headers={"X-Request-ID": "json-1"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [access] = [line for line in lines if line.get("logger") == "app.access"]
    assert access["level"] == "INFO"
    assert access["message"] == "request"
    assert access["request_id"] == "json-1"
    assert access["status"] == 200
    assert "timestamp" in access


def test_records_outside_requests_have_no_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("tests.plain").warning("outside", extra={"answer": 42})
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["message"] == "outside"
    assert line["answer"] == 42
    assert "request_id" not in line


def test_log_level_filters_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING")
    logging.getLogger("tests.plain").info("hidden")
    logging.getLogger("tests.plain").error("shown")
    messages = [json.loads(x)["message"] for x in capsys.readouterr().out.splitlines()]
    assert messages == ["shown"]
    configure_logging("INFO")


@pytest.mark.parametrize(
    ("enabled", "level", "handlers"), [(False, "WARNING", []), (True, "INFO", ["stdout"])]
)
def test_gunicorn_access_log_only_when_asked(
    enabled: bool, level: str, handlers: list[str]
) -> None:
    access = logging_config(gunicorn_access_log=enabled)["loggers"]["gunicorn.access"]
    assert access["level"] == level
    assert access["handlers"] == handlers


@pytest.mark.parametrize(
    "value", [2**70, "caf\udce9", "café", "a\u2028b", {"nested": [1.5, None]}, -(2**63)]
)
def test_a_record_is_one_json_line_whatever_its_values(value: object) -> None:
    """Values orjson refuses (beyond 64 bits, a lone surrogate) or writes raw (non-ASCII) go
    through json instead."""
    spec = dict(logging_config()["formatters"]["json"])
    formatter = spec.pop("()")(**spec)
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, "hello", (), None)
    record.value = value

    line = formatter.format(record)

    assert line.isascii()  # whatever stdout's encoding; no U+2028 splitting a line either
    parsed = json.loads(line)
    assert (parsed["logger"], parsed["message"], parsed["value"]) == ("app.test", "hello", value)


class Private(StrEnum):
    KEY = "_enum_key"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"rename_fields": {"extra": "renamed", "levelname": "level"}, "timestamp": "at"},
        {"static_fields": {"service": "x"}, "defaults": {"env": "test"}},
        {"rename_fields": {"missing": "gone"}, "rename_fields_keep_missing": True},
    ],
)
@pytest.mark.parametrize("message", ["hello %s", {"event": "signed in", "extra": 2}])
def test_the_fields_of_a_record_are_python_json_loggers(
    options: dict[str, object], message: object
) -> None:
    """JsonLines picks a record's fields its own way (fewer calls): the same, in the same
    order, as python-json-logger's formatter."""
    ours = JsonLines("%(levelname)s %(name)s %(message)s", **options)  # type: ignore[arg-type]
    theirs = OrjsonFormatter("%(levelname)s %(name)s %(message)s", **options)  # type: ignore[arg-type]
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, message, ("x",), None)
    record.extra, record._private, record.route = 1, "hidden", "/items"
    record.__dict__[7] = "a key that is no string"
    record.__dict__[Private.KEY] = "a private key of a str subclass"

    assert list(json.loads(ours.format(record)).items()) == list(
        json.loads(theirs.format(record)).items()
    )


@pytest.fixture
def gunicorns_loggers() -> Iterator[None]:
    """gunicorn's Logger configures the process's logging; put it back as it was."""
    names = ("", "gunicorn.error", "gunicorn.access")
    kept = [
        (logger, logger.level, logger.handlers[:], logger.filters[:], logger.propagate)
        for logger in map(logging.getLogger, names)
    ]
    yield
    for logger, level, handlers, filters, propagate in kept:
        logger.setLevel(level)
        logger.handlers[:], logger.filters[:], logger.propagate = handlers, filters, propagate


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.usefixtures("gunicorns_loggers")
def test_gunicorn_builds_its_access_line_only_when_written(
    enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn's own Logger works out the line's atoms for every request once any logging
    configuration is given, even when ``gunicorn.access`` drops the line."""
    config = Config()
    config.set("logconfig_dict", logging_config(gunicorn_access_log=enabled))
    logger = GunicornLogger(config)
    atoms = record_calls(monkeypatch, logger, "atoms")
    written = record_calls(monkeypatch, logger.access_log, "info")
    response = SimpleNamespace(status="200 OK", headers=[], sent=2, response_length=2)
    request = SimpleNamespace(headers=[], method="GET", uri="/", path="/", query="", version=(1, 1))
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }

    logger.access(response, request, environ, timedelta(milliseconds=3))

    assert len(atoms) == len(written) == int(enabled)


@pytest.mark.usefixtures("gunicorns_loggers")
def test_gunicorns_statsd_logger_still_takes_over_when_statsd_is_on() -> None:
    config = Config()
    config.set("statsd_host", "127.0.0.1:9125")  # a UDP socket connected, nothing sent
    logger = GunicornLogger(config)
    try:
        assert type(logger) is Statsd
    finally:
        logger.sock.close()


@pytest.mark.parametrize(
    ("bind", "args", "shown"),
    [
        ("http://127.0.0.1:8000", ("", 42), "Listening at: http://127.0.0.1:8000 (42)"),
        ("http://127.0.0.1:8000", ("http://0.0.0.0:9", 42), "Listening at: http://0.0.0.0:9 (42)"),
        ("", ("", 42), "Listening at:  (42)"),
    ],
)
def test_gunicorns_listening_line_names_the_address(
    bind: str, args: tuple[object, ...], shown: str
) -> None:
    """With reuse_port the master holds no socket, and gunicorn's line would name none."""
    record = logging.LogRecord(
        "gunicorn.error", logging.INFO, "", 0, "Listening at: %s (%s)", args, None
    )
    assert ListeningFilter(bind).filter(record)
    assert record.getMessage() == shown


@contextmanager
def logging_as_configured() -> Iterator[logging.Logger]:
    """Inside: the root logger as create_app configures it, its one handler the JSON lines on
    stdout (pytest's capturing handlers, which would make every record take logging's path,
    set aside); the access logger. Afterwards, as it was."""
    root, access = logging.getLogger(), logging.getLogger("app.access")
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO")
    try:
        yield access
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        access.filters.clear()


def access_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [line for line in lines if line["logger"] == "app.access"]


ACCESS_REQUESTS = [
    ("POST", "/api/probe/items", {"name": "a", "count": 1}),  # routed, 201
    ("GET", "/missing", None),  # no route
    ("GET", "/caf%C3%A9/%E2%80%A8", None),  # non-ASCII: the json formatter's escapes
]
_CHANGING = re.compile(r'"(timestamp|duration_ms)": ?("[^"]*"|[0-9.e-]+)')


def tracing(*, valid: bool) -> SimpleNamespace:
    """Stands for ``opentelemetry.trace`` (imported: tracing on), its current span's context
    valid or not (trace id 7, span id 9)."""
    context = SimpleNamespace(is_valid=valid, trace_id=7, span_id=9)
    span = SimpleNamespace(get_span_context=lambda: context)
    return SimpleNamespace(get_current_span=lambda: span)


def json_lines(fmt: str | None = None, **options: object) -> JsonLines:
    """The formatter logging_config sets up, with ``options`` of python-json-logger's."""
    spec = logging_config("INFO")["formatters"]["json"]
    return JsonLines(  # type: ignore[misc]
        fmt or spec["fmt"], rename_fields=spec["rename_fields"], timestamp=True, **options
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"static_fields": {"service": "api"}, "defaults": {"env": "test"}},
        {"rename_fields_keep_missing": True, "prefix": "> "},
        {"logProcesses": False},  # logging's switch: the record's process is None
        {"tracing": True},  # a span current: its ids, as RequestIdFilter adds them
    ],
)
def test_the_access_line_written_directly_is_the_records(
    client: FlaskClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, object],
) -> None:
    """With logging as create_app configures it, the access record's line is written without
    a log record: the same line, byte for byte but its time, as the logging module's path
    writes (which a filter on the access logger brings back)."""
    if "logProcesses" in options:
        monkeypatch.setattr(logging, "logProcesses", options.pop("logProcesses"))
    traced = bool(options.pop("tracing", False))
    if traced:
        monkeypatch.setitem(sys.modules, "opentelemetry.trace", tracing(valid=True))
    with logging_as_configured() as access:
        [stdout] = logging.getLogger().handlers
        stdout.setFormatter(json_lines(**options))
        capsys.readouterr()
        handled = record_calls(monkeypatch, access, "handle")
        for method, path, body in ACCESS_REQUESTS:
            client.open(path, method=method, json=body, headers={"X-Request-ID": "direct"})
        direct = capsys.readouterr().out.splitlines()
        assert handled == []  # no record

        access.addFilter(lambda _record: True)  # any filter: logging's own path
        for method, path, body in ACCESS_REQUESTS:
            client.open(path, method=method, json=body, headers={"X-Request-ID": "direct"})
        logged = capsys.readouterr().out.splitlines()
        assert len(handled) == len(ACCESS_REQUESTS)

    ours = [_CHANGING.sub(r'"\1": 0', line) for line in direct if "app.access" in line]
    theirs = [_CHANGING.sub(r'"\1": 0', line) for line in logged if "app.access" in line]
    assert len(ours) == len(ACCESS_REQUESTS)
    assert ours == theirs
    assert "\\u2028" in ours[2]  # escaped: the json formatter's fallback wrote it
    if traced:
        ids = [(line["trace_id"], line["span_id"]) for line in map(json.loads, ours)]
        assert ids == [(f"{7:032x}", f"{9:016x}")] * len(ACCESS_REQUESTS)


class Broken(io.StringIO):
    """A stdout that refuses writes, or (``flushes=False``) only flushes."""

    def __init__(self, *, writes: bool) -> None:
        super().__init__()
        self.writes = writes

    def write(self, text: str) -> int:
        if not self.writes:
            raise OSError("stdout is gone")
        return super().write(text)

    def flush(self) -> None:
        raise OSError("stdout cannot flush")


def test_an_access_line_the_stream_refuses_goes_through_logging(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that refuses the line: the record goes to the handler, which reports the
    error as logging does (on stderr); the request is answered all the same."""
    with logging_as_configured() as access:
        capsys.readouterr()
        handled = record_calls(monkeypatch, access, "handle")
        monkeypatch.setattr(sys, "stdout", Broken(writes=False))
        assert client.get("/missing").status_code == 404
        monkeypatch.undo()
    assert len(handled) == 1
    assert "OSError: stdout is gone" in capsys.readouterr().err


def test_an_access_line_written_but_not_flushed_is_reported_once(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line reached the stream and its flush failed: reported as logging reports it, and
    not written a second time."""
    stream = Broken(writes=True)
    with logging_as_configured() as access:
        capsys.readouterr()
        handled = record_calls(monkeypatch, access, "handle")
        monkeypatch.setattr(sys, "stdout", stream)
        assert client.get("/missing").status_code == 404
        monkeypatch.undo()
    assert handled == []
    assert [json.loads(line)["path"] for line in stream.getvalue().splitlines()] == ["/missing"]
    assert "OSError: stdout cannot flush" in capsys.readouterr().err


class OwnLogger(logging.Logger):
    """A logger class of an embedding program's."""


class OwnRecord(logging.LogRecord):
    """A record class of an embedding program's (``logging.setLogRecordFactory``)."""


class OwnJsonLines(JsonLines):
    """A formatter of an embedding program's, on top of ours."""


def set_up_logging(name: str, monkeypatch: pytest.MonkeyPatch, access: logging.Logger) -> None:
    """Change logging as create_app configured it in the way ``name`` says."""
    root = logging.getLogger()
    [stdout] = root.handlers
    quiet = logging.StreamHandler(io.StringIO())

    def second_handler_above_info() -> None:
        quiet.setLevel(logging.WARNING)
        monkeypatch.setattr(root, "handlers", [stdout, quiet])

    def handler_of_its_own() -> None:
        monkeypatch.setattr(access, "propagate", False)
        monkeypatch.setattr(access, "handlers", [stdout])

    changes: dict[str, Callable[[], None]] = {
        "a second handler": lambda: monkeypatch.setattr(root, "handlers", [stdout, quiet]),
        "a second handler, above INFO": second_handler_above_info,
        "the JSON handler above INFO": lambda: monkeypatch.setattr(
            stdout, "level", logging.WARNING
        ),
        "a filter on the access logger": lambda: access.addFilter(logging.Filter("app")),
        "a filter on the root logger (logging applies it to the root's own records)": lambda: (
            monkeypatch.setattr(root, "filters", [lambda _record: False])
        ),
        "no propagation, the JSON handler its own": handler_of_its_own,
        "no propagation, no handler": lambda: monkeypatch.setattr(access, "propagate", False),
        "another formatter": lambda: stdout.setFormatter(logging.Formatter("%(message)s")),
        "a formatter of its own on top of ours": lambda: stdout.setFormatter(
            OwnJsonLines("%(message)s")
        ),
        "a formatter asking for more of a record": lambda: stdout.setFormatter(
            json_lines("%(asctime)s %(message)s")
        ),
        "a formatter writing a record's own attributes": lambda: stdout.setFormatter(
            json_lines(reserved_attrs=["msg"])
        ),
        "a formatter that fails": lambda: monkeypatch.setattr(JsonLines, "line", lambda *_: 1 / 0),
        "a logger class of its own": lambda: monkeypatch.setattr(access, "__class__", OwnLogger),
        "a record factory of its own": lambda: monkeypatch.setattr(
            logging, "_logRecordFactory", OwnRecord
        ),
        "tracing on, no span current": lambda: monkeypatch.setitem(
            sys.modules, "opentelemetry.trace", tracing(valid=False)
        ),
    }
    changes[name]()


@pytest.mark.parametrize(
    ("set_up", "direct"),
    [
        ("a second handler", False),
        ("a second handler, above INFO", True),
        ("the JSON handler above INFO", False),
        ("a filter on the access logger", False),
        ("a filter on the root logger (logging applies it to the root's own records)", True),
        ("no propagation, the JSON handler its own", True),
        ("no propagation, no handler", False),
        ("another formatter", False),
        ("a formatter of its own on top of ours", False),
        ("a formatter asking for more of a record", False),
        ("a formatter writing a record's own attributes", False),
        ("a formatter that fails", False),
        ("a logger class of its own", False),
        ("a record factory of its own", False),
        ("tracing on, no span current", True),
    ],
)
def test_any_other_logging_set_up_gets_the_access_record(
    client: FlaskClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    set_up: str,
    direct: bool,
) -> None:
    """The line is written directly only to the one JSON handler create_app configures (or
    the same handler, moved): any other set-up logs a record, through whatever handlers it
    has (logging's last resort when it has none)."""
    with logging_as_configured() as access:
        set_up_logging(set_up, monkeypatch, access)
        handled = record_calls(monkeypatch, access, "handle")
        capsys.readouterr()
        client.get("/missing")
        monkeypatch.undo()
    assert len(handled) == (0 if direct else 1)
    if direct:
        assert [line["path"] for line in access_lines(capsys)] == ["/missing"]


def test_generated_request_ids_are_version_4_uuids_and_differ() -> None:
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for each in ids:
        parsed = uuid.UUID(hex=each)
        assert (parsed.hex, parsed.version, parsed.variant) == (each, 4, uuid.RFC_4122)


def test_request_ids_do_not_follow_randoms_seed() -> None:
    """A program (or a test library: Hypothesis) seeding ``random`` does not repeat ids."""
    drawn = []
    for _ in range(2):
        random.seed(0)
        drawn.append(new_request_id())
    assert drawn[0] != drawn[1]


def _id_of_a_forked_child(connection: Connection) -> None:
    connection.send(new_request_id())


# Python 3.12 warns of a fork in a process with threads (earlier tests may leave some): the
# child here only draws an id and sends it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_workers_draw_different_request_ids() -> None:
    """gunicorn forks its workers from the master that built the app: each draws its own ids
    (the generator is reseeded in every forked child), not the same sequence."""
    fork = multiprocessing.get_context("fork")
    drawn = []
    for _ in range(2):
        ours, theirs = fork.Pipe()
        child = fork.Process(target=_id_of_a_forked_child, args=(theirs,))
        child.start()
        try:
            assert ours.poll(30), "the child sent no id within 30 s"
            drawn.append(ours.recv())
        finally:
            child.join(30)
            if child.is_alive():  # never left behind
                child.kill()
                child.join()
    assert drawn[0] != drawn[1]


class CountingLock:
    """A handler's lock that counts its acquisitions."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self) -> None:
        self.acquired += 1

    def release(self) -> None:
        pass


@contextmanager
def stdout_on_a_pipe(
    monkeypatch: pytest.MonkeyPatch, encoding: str = "utf-8"
) -> Iterator[tuple[StdoutHandler, CountingLock, Callable[[], bytes]]]:
    """sys.stdout a text file over a pipe's write end, as a gunicorn worker's is; a
    StdoutHandler with a counting lock, and a function that returns what the pipe holds."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    stream = os.fdopen(write_end, "w", encoding=encoding)
    monkeypatch.setattr(sys, "stdout", stream)
    handler = StdoutHandler()
    lock = CountingLock()
    handler.lock = lock  # type: ignore[assignment]

    def written() -> bytes:
        try:
            return os.read(read_end, 1 << 20)
        except BlockingIOError:
            return b""

    try:
        yield handler, lock, written
    finally:
        monkeypatch.undo()
        stream.close()
        os.close(read_end)


def test_a_short_ascii_line_goes_to_the_descriptor_without_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with stdout_on_a_pipe(monkeypatch) as (handler, lock, written):
        assert handler.write('{"message": "request"}')
        assert handler.write('{"message": "again"}')
        assert written() == b'{"message": "request"}\n{"message": "again"}\n'
        assert lock.acquired == 0


@pytest.mark.parametrize(
    "line",
    [
        "x" * select.PIPE_BUF,  # with its newline, past what the kernel writes whole
        '{"path": "/caf\u00e9"}',  # not ASCII: the stream encodes it
    ],
)
def test_any_other_line_goes_through_the_stream_under_the_lock(
    monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    with stdout_on_a_pipe(monkeypatch) as (handler, lock, written):
        assert handler.write(line)
        assert written() == (line + "\n").encode()
        assert lock.acquired


def test_a_stream_in_another_encoding_takes_lines_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    with stdout_on_a_pipe(monkeypatch, encoding="utf-16") as (handler, lock, written):
        assert handler.write("{}")
        assert written().decode("utf-16") == "{}\n"
        assert lock.acquired


def test_lines_follow_a_swapped_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    with stdout_on_a_pipe(monkeypatch) as (handler, _lock, first):
        assert handler.write("one")
        with stdout_on_a_pipe(monkeypatch) as (_other, _lock2, second):
            assert handler.write("two")
            assert second() == b"two\n"
        assert first() == b"one\n"


def test_a_line_the_pipe_refuses_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader is gone (EPIPE): False, and the caller takes the record's path, which
    reports it."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        assert not StdoutHandler().write("{}")
    finally:
        monkeypatch.undo()
        with contextlib.suppress(BrokenPipeError):
            stream.close()


def test_a_line_cut_short_is_finished(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """os.write wrote part of the line (a signal, a full disk): the rest follows; if the rest
    fails, logging reports it, and the line is not written again."""
    real_write = os.write
    calls: list[int] = []

    def three_bytes_at_a_time(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, data[:3])

    with stdout_on_a_pipe(monkeypatch) as (handler, _lock, written):
        monkeypatch.setattr(logs.os, "write", three_bytes_at_a_time)
        assert handler.write("abcdefg")
        assert written() == b"abcdefg\n"
        assert calls == [8, 5, 2]

        def first_part_only(fd: int, data: bytes) -> int:
            if len(data) < len("hijklmn\n"):
                raise OSError("no space left on device")
            return real_write(fd, data[:3])

        monkeypatch.setattr(logs.os, "write", first_part_only)
        assert handler.write("hijklmn")
        assert written() == b"hij"
    assert "OSError: no space left on device" in capsys.readouterr().err


def test_lines_written_at_once_from_many_threads_stay_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight threads released together, each writing lines of a size of its own into one
    pipe: every line arrives whole (the kernel writes each os.write whole)."""
    threads, lines = 8, 200
    with stdout_on_a_pipe(monkeypatch) as (handler, _lock, written):
        os.set_blocking(sys.stdout.fileno(), True)
        received = bytearray()
        done = threading.Event()

        def drain() -> None:
            while True:
                finished = done.is_set()  # before the read: every line is in the pipe by then
                chunk = written()
                if chunk:
                    received.extend(chunk)
                elif finished:
                    return
                else:
                    time.sleep(0.001)

        reader = threading.Thread(target=drain)
        reader.start()
        barrier = threading.Barrier(threads)

        def write(number: int) -> None:
            barrier.wait()
            for each in range(lines):
                assert handler.write(f"{number}:{each}:" + "x" * (number * 450))

        workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        done.set()
        reader.join()
    got = received.decode().splitlines()
    assert len(got) == threads * lines
    for line in got:
        number, _each, filler = line.split(":")
        assert filler == "x" * (int(number) * 450)
    assert sorted(got) == sorted(
        f"{n}:{e}:" + "x" * (n * 450) for n in range(threads) for e in range(lines)
    )


def test_an_id_the_app_set_is_replaced_by_the_requests(app: Flask) -> None:
    @app.get("/test-own-id")
    def own_id() -> Response:
        answer = Response("ok")
        answer.headers["x-request-id"] = "the-views"
        answer.headers["X-Other"] = "kept"
        return answer

    response = app.test_client().get("/test-own-id", headers={REQUEST_ID_HEADER: "the-callers"})
    assert response.headers.getlist(REQUEST_ID_HEADER) == ["the-callers"]
    assert response.headers["X-Other"] == "kept"


def test_a_request_that_came_in_another_way_is_given_an_id_once(app: Flask) -> None:
    """A test's request context, say, which the WSGI middleware never saw."""
    with app.test_request_context("/"):
        first = request_id(flask.request.environ)
        assert re.fullmatch(r"[0-9a-f]{32}", first)
        assert request_id(flask.request.environ) == first


def test_a_closed_stdout_is_not_written_through_its_old_descriptor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The descriptor a closed stream had may belong to another file by now."""
    with stdout_on_a_pipe(monkeypatch) as (handler, _lock, written):
        assert handler.write("open")
        assert written() == b"open\n"
        old = sys.stdout.fileno()
        sys.stdout.close()
        other = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT)  # the lowest free: old
        try:
            assert other == old
            assert not handler.write("closed")  # the record's path then reports it
        finally:
            os.close(other)
    assert (tmp_path / "other").read_bytes() == b""


def test_a_descriptor_that_takes_nothing_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with stdout_on_a_pipe(monkeypatch) as (handler, _lock, _written):
        real_write = os.write
        monkeypatch.setattr(logs.os, "write", lambda fd, data: real_write(fd, data[:2]) * 0)
        assert handler.write("abc")  # began: reported, not written again
    assert "OSError: stdout took none of the line" in capsys.readouterr().err


def test_a_request_context_the_middleware_never_saw_logs_no_request_id(app: Flask) -> None:
    with app.test_request_context("/"):
        record = logging.makeLogRecord({"msg": "inside"})
        assert RequestIdFilter().filter(record)
        assert not hasattr(record, "request_id")


def test_lines_of_other_fields_are_laid_out_as_records_are() -> None:
    """One formatter, lines of different extra fields in turn (each laid out on first use):
    each the line its record would be."""
    formatter = json_lines(
        static_fields={"service": "api"}, defaults={"env": "test"}, rename_fields_keep_missing=True
    )
    extras: list[dict[str, object]] = [
        {"method": "GET", "status": 200},
        {"status": 404, "_private": "left out", "route": None},
        {"method": "POST", "status": 201},
        {},
    ]
    for extra in extras:
        record = logging.makeLogRecord(
            {"name": "app.access", "levelno": logging.INFO, "levelname": "INFO", "msg": "request"}
            | extra
        )
        line = formatter.line("app.access", "request", extra)
        assert line is not None
        assert _CHANGING.sub(r'"\1": 0', line) == _CHANGING.sub(
            r'"\1": 0', formatter.format(record)
        )
        assert "left out" not in line
