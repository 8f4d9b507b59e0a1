"""JSON logging on stdout, request ids and the access record.

The same :func:`logging_config` configures the app (from ``create_app``) and gunicorn (from
``gunicorn.conf.py``'s ``logconfig_dict``), so every line a process prints is one JSON object.
"""

from __future__ import annotations

import codecs
import io
import logging
import logging.config
import os
import random
import re
import select
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from flask import Flask, Response, has_request_context, request
from pythonjsonlogger.core import RESERVED_ATTRS, LogData
from pythonjsonlogger.json import JsonFormatter
from pythonjsonlogger.orjson import OrjsonFormatter

from powerstrip.http import REQUEST_ID_HEADER, current_request, environ_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

access_log = logging.getLogger("app.access")
# The fields a JSON line can hold without a log record (JsonLines.line), in the order line()
# passes their values.
_RECORD_FREE_ORDER = ("levelname", "name", "process", "message")
_RECORD_FREE_FIELDS = frozenset(_RECORD_FREE_ORDER)
# A line's layout (JsonLines._layout): (field, index of its value) pairs, and the constants.
_Layout = tuple[tuple[tuple[str, int], ...], tuple[Any, ...]]
_LAYOUTS = 64


class StdoutHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes to whatever ``sys.stdout`` is at the time of the record.

    A plain ``StreamHandler(sys.stdout)`` keeps the stream it was built with, which breaks as
    soon as something (a test runner, a daemoniser) swaps ``sys.stdout``.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        # The stream whose file descriptor write() writes to directly, and that descriptor
        # (or None: that stream takes lines through its own write and flush).
        self._direct: tuple[TextIO, int | None] | None = None

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """Ignore: the stream is always the current ``sys.stdout``."""

    def write(self, line: str) -> bool:
        """Write a formatted ``line`` as :meth:`emit` writes a record's; False if the stream
        refused it (nothing written: the caller then logs the record, and the handler reports
        the error as logging does). A line that was written, but whose flush failed, is
        reported the same way, and not written again.

        When ``sys.stdout`` is a plain text file over a file descriptor (a pipe, a file, a
        terminal: how gunicorn's workers run) in UTF-8 or ASCII, a line of at most
        ``PIPE_BUF`` bytes (4 KiB on Linux) is written with one ``os.write``, without the
        handler's lock: the kernel writes it whole, as it writes every worker's lines into
        the one pipe they share. Served, the lock cost about as much as the write (threads
        queueing on it while its holder waits on the write). Any other line, and any other
        stream, goes through the stream's write and flush under the lock.

        What that gives up: a record longer than ``PIPE_BUF`` (a traceback), written while the
        pipe is full, may be split by the kernel around a short line of another thread, as it
        may already be around another worker's lines; and text printed without a flush (the
        stream's buffer, which every record's emit flushes) appears after lines written since.
        """
        fd = self._fd_of(sys.stdout)
        text = line + self.terminator
        if fd is not None and len(text) <= _ATOMIC_WRITE and text.isascii():
            data = text.encode("ascii")  # what the stream would write: it is UTF-8 or ASCII
            try:
                written = os.write(fd, data)
            except OSError:  # nothing written: the record's path reports it
                return False
            while written < len(data):  # a signal cut it short, or the disk filled up
                try:
                    more = os.write(fd, data[written:])
                    if not more:
                        raise OSError("stdout took none of the line")
                except OSError:
                    self.handleError(logging.makeLogRecord({"msg": line}))
                    break
                written += more
            return True
        self.acquire()
        try:
            try:
                self.stream.write(text)
            except Exception:  # noqa: BLE001 - emit's own rule: logging never fails a request
                return False
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - as above
                self.handleError(logging.makeLogRecord({"msg": line}))
        finally:
            self.release()
        return True

    def _fd_of(self, stream: TextIO) -> int | None:
        """``stream``'s file descriptor, if :meth:`write` may write a line to it directly."""
        known = self._direct
        if known is not None and known[0] is stream and not stream.closed:
            return known[1]
        fd = None
        if type(stream) is io.TextIOWrapper and _ascii_compatible(stream.encoding):
            try:
                fd = stream.fileno()
            except (OSError, ValueError):  # closed, or no descriptor
                fd = None
        self._direct = (stream, fd)
        return fd


# The longest line written with one os.write: the most the kernel writes whole into a pipe.
_ATOMIC_WRITE = select.PIPE_BUF


def _ascii_compatible(encoding: str) -> bool:
    """Whether ``encoding`` writes ASCII text as the ASCII bytes (and nothing before them)."""
    try:
        return codecs.lookup(encoding).name in {"utf-8", "ascii"}
    except LookupError:
        return False


class JsonLines(OrjsonFormatter):
    """python-json-logger's orjson formatter: a record is one compact JSON line, formatted in
    half the time its ``json`` formatter takes (the access record is on every request).

    A line orjson would write with non-ASCII characters in it (a client's path, say), or
    cannot write at all (an integer beyond 64 bits, a lone surrogate), is written by the
    ``json`` formatter instead, every non-ASCII character escaped: whatever the encoding of
    stdout, no record is lost, and U+2028 never splits one. NaN and infinities are ``null``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fallback = JsonFormatter(*args, **kwargs)
        # Whether line() can write what format() would: every field asked of a record is one
        # line() knows without a record, and every attribute of a record is skipped.
        self._record_free = set(self._required_fields) <= _RECORD_FREE_FIELDS and set(
            RESERVED_ATTRS
        ) <= set(self._skip_fields)
        self._layouts: dict[tuple[Any, ...], _Layout] = {}  # line()'s, by extra keys

    def line(self, logger: str, message: str, extra: Mapping[str, Any]) -> str | None:
        """The line :meth:`format` writes for an INFO record of ``logger`` with ``message`` and
        the extra fields ``extra``, built without the record (see :func:`_finish_request`);
        None when this formatter asks a record for more than its level, logger, process and
        message."""
        if not self._record_free:
            return None
        keys = tuple(extra)
        layout = self._layouts.get(keys)
        if layout is None:
            layout = self._layout(keys)
        slots, constants = layout
        values = (
            logging.getLevelName(logging.INFO),  # _RECORD_FREE_FIELDS' order
            logger,
            os.getpid() if logging.logProcesses else None,
            message,
            *extra.values(),
            datetime.fromtimestamp(time.time(), tz=UTC) if self.timestamp else None,
            *constants,
        )
        log_data = {key: values[index] for key, index in slots}
        return self.serialize_log_record(self.process_log_record(log_data))

    def _layout(self, keys: tuple[Any, ...]) -> _Layout:
        """Where each field of :meth:`line`'s output comes from when the extra fields are
        named ``keys``, in order: :meth:`_assemble` run once on stand-ins for the values, so the
        output is its own by construction. Each slot is a field's name and its index among
        the level's name, the logger, the process, the message, the extra fields' values, the
        timestamp, and then the constants (defaults, static fields, fields kept missing).
        Worked out from the formatter's settings on first use; kept for up to ``_LAYOUTS``
        sets of keys (the access record has two: with a span's ids and without)."""
        stand_ins = [object() for _ in range(len(_RECORD_FREE_ORDER) + len(keys) + 1)]
        known = dict(zip(_RECORD_FREE_ORDER, stand_ins, strict=False))
        extra = dict(zip(keys, stand_ins[len(_RECORD_FREE_ORDER) :], strict=False))
        log_data: dict[str, Any] = {}
        self._assemble(log_data, known, {}, extra, stand_ins[-1])
        where = {id(stand_in): index for index, stand_in in enumerate(stand_ins)}
        slots: list[tuple[str, int]] = []
        constants: list[Any] = []
        for key, value in log_data.items():
            index = where.get(id(value))
            if index is None:  # not a stand-in: the same value on every line
                index = len(stand_ins) + len(constants)
                constants.append(value)
            slots.append((key, index))
        layout = (tuple(slots), tuple(constants))
        if len(self._layouts) < _LAYOUTS:
            self._layouts[keys] = layout
        return layout

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """python-json-logger's, with one call per extra field of the record instead of its
        ``merge_record_extra``'s three (the access record has seven): the same fields, in the
        same order, renamed alike."""
        fields = record.__dict__
        stamp = datetime.fromtimestamp(record.created, tz=UTC) if self.timestamp else None
        self._assemble(log_data, fields, message_dict, fields, stamp)

    def _assemble(
        self,
        log_data: dict[str, Any],
        required: Mapping[str, Any],
        message_dict: Mapping[str, Any],
        extra: Mapping[Any, Any],
        stamp: Any,
    ) -> None:
        """A record's fields in python-json-logger's order: the defaults, the required ones
        (from ``required``), the static ones and ``message_dict``'s, every ``extra`` field
        neither reserved nor private, the timestamp (``stamp``), and renamed fields that are
        missing."""
        rename = self.rename_fields
        for field, value in self.defaults.items():
            log_data[rename.get(field, field)] = value
        for field in self._required_fields:
            log_data[rename.get(field, field)] = required.get(field)
        for data in (self.static_fields, message_dict):
            for key, value in data.items():
                log_data[rename.get(key, key)] = value
        skip = self._skip_fields
        for key, value in extra.items():
            # Its rule: neither reserved nor private (a string key starting with "_").
            if key not in skip and not (
                (key.__class__ is str or isinstance(key, str)) and key[:1] == "_"
            ):
                log_data[rename.get(key, key)] = value
        if self.timestamp:
            key = self.timestamp if isinstance(self.timestamp, str) else "timestamp"
            log_data[rename.get(key, key)] = stamp
        if self.rename_fields_keep_missing:
            for field in rename.values():
                if field not in log_data:
                    log_data[field] = None

    def jsonify_log_record(self, log_data: LogData) -> str:
        try:
            line = super().jsonify_log_record(log_data)
        except TypeError:  # orjson.JSONEncodeError
            return self._fallback.jsonify_log_record(log_data)
        return line if line.isascii() else self._fallback.jsonify_log_record(log_data)


class RequestIdFilter(logging.Filter):
    """Add the current request id to every record logged while a request is handled, and the
    trace and span ids while a span is current (tracing on: app.tracing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            found = request.environ.get(REQUEST_ID_ENVIRON)
            if found is not None:  # None: a request context RequestIds never saw
                record.request_id = found
        if not hasattr(record, "trace_id"):
            ids = _trace_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


def _trace_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids, if a span is current (tracing on)."""
    trace = sys.modules.get("opentelemetry.trace")  # never imported while tracing is off
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class ListeningFilter(logging.Filter):
    """Name the addresses in gunicorn's "Listening at:" line, which is empty when the workers
    bind their own sockets (``reuse_port``)."""

    def __init__(self, bind: str = "") -> None:
        super().__init__()
        self._bind = bind

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            self._bind
            and record.msg == "Listening at: %s (%s)"
            and isinstance(record.args, tuple)
            and not record.args[0]
        ):
            record.args = (self._bind, *record.args[1:])
        return True


def logging_config(
    level: str = "INFO", *, gunicorn_access_log: bool = False, bind: Sequence[str] = ()
) -> dict[str, Any]:
    """A ``dictConfig`` for JSON lines on stdout, shared by the app and gunicorn.

    The app writes the access record (with route rule and request id); gunicorn's own access
    log would be a second record per request, so it is dropped unless asked for. ``bind``:
    gunicorn's addresses, for its "Listening at:" line.
    """
    access_handlers = ["stdout"] if gunicorn_access_log else []
    handler = {
        "()": StdoutHandler,
        "formatter": "json",
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "listening": {"()": ListeningFilter, "bind": ",".join(f"http://{b}" for b in bind)},
        },
        "formatters": {
            "json": {
                "()": JsonLines,
                "fmt": "%(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": True,
            }
        },
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {
                "level": level,
                "handlers": ["stdout"],
                "filters": ["listening"],
                "propagate": False,
            },
            "gunicorn.access": {
                "level": "INFO" if gunicorn_access_log else "WARNING",
                "handlers": access_handlers,
                "propagate": False,
            },
        },
    }


def configure_logging(level: str) -> None:
    """Send every log record of this process to stdout as one JSON object per line.

    gunicorn's own loggers are left as ``gunicorn.conf.py`` configured them: the app is built
    after that (``preload_app``), and would otherwise turn ``GUNICORN_ACCESSLOG=1`` off.
    """
    config = logging_config(level)
    config["loggers"] = {}
    logging.config.dictConfig(config)


_REQUEST_ID_KEY = environ_key(REQUEST_ID_HEADER)
REQUEST_ID_ENVIRON = "powerstrip.request_id"  # the request's id, in its WSGI environ
_STARTED_ENVIRON = "powerstrip.request_started"  # time.perf_counter() when it came in
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower()


class RequestIds:
    """WSGI middleware: a request's id in its environ (:func:`request_id`) from the moment it
    comes in, and on its answer as ``X-Request-ID`` (in place of one the app set).

    The id is the caller's ``X-Request-ID`` when well formed (1-128 letters, digits and
    ``._:-``, starting with a letter or digit), else a new one. On the header list the app
    hands the server rather than on the Flask response: werkzeug would validate the header
    and copy it once more (about 20 function calls a request).
    """

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self._wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[_STARTED_ENVIRON] = time.perf_counter()
        own = request_id(environ)

        def with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = [name.lower() for name, _ in headers]
            if _REQUEST_ID_NAME in names:
                kept = zip(headers, names, strict=True)
                headers[:] = [header for header, name in kept if name != _REQUEST_ID_NAME]
            headers.append((REQUEST_ID_HEADER, own))
            return start_response(status, headers, exc_info)

        return self._wsgi_app(environ, with_id)


def request_started(environ: WSGIEnvironment) -> float:
    """When the request of ``environ`` came in (``time.perf_counter()``, set by
    :class:`RequestIds`); now for one that came in some other way (a test's request context).
    The access record's duration and the latency metric both count from it."""
    started: float | None = environ.get(_STARTED_ENVIRON)
    return time.perf_counter() if started is None else started


def request_id(environ: WSGIEnvironment) -> str:
    """The id of the request of ``environ`` (:class:`RequestIds`). A request that came in
    some other way (a test's request context) is given one on first asking."""
    found: str | None = environ.get(REQUEST_ID_ENVIRON)
    if found is None:
        found = environ[REQUEST_ID_ENVIRON] = _request_id_from_header(environ)
    return found


def _request_id_from_header(environ: WSGIEnvironment) -> str:
    candidate: str = environ.get(_REQUEST_ID_KEY, "")
    if _REQUEST_ID_PATTERN.fullmatch(candidate):
        return candidate
    return new_request_id()


def new_request_id() -> str:
    """A random version 4 UUID's 32 hex digits, as ``uuid.uuid4().hex`` writes them.

    From a :class:`random.Random` rather than ``os.urandom``: a request id correlates log
    lines and answers, and guards nothing. ``os.urandom`` is a system call that lets the
    worker's other threads take the interpreter meanwhile, and on every request that handover
    cost about 20 µs of CPU, served. The generator is reseeded from the system in every forked
    process (each gunicorn worker), so workers draw different ids.
    """
    bits = _IDS.getrandbits(128)  # nosec B311
    return f"{bits & _UUID_CLEAR | _UUID_VERSION_4:032x}"


# The request ids' own generator: one the program (or Hypothesis) seeds for its own ends,
# random's, would repeat them. Seeded from the system here and again in every forked child.
_IDS = random.Random()  # noqa: S311 # nosec B311
os.register_at_fork(after_in_child=_IDS.seed)


# A version 4 UUID's fixed bits: its version (4) and its variant (RFC 9562: 0b10).
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def _finish_request(response: Response) -> Response:
    if not access_log.isEnabledFor(logging.INFO):
        return response
    handled = current_request()
    environ = handled.environ
    started = request_started(environ)
    rule = handled.url_rule
    fields = {
        "method": handled.method,
        "route": rule.rule if rule else None,
        "path": handled.path,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "remote_addr": handled.remote_addr,
        "request_id": request_id(environ),
    }
    ids = _trace_ids()
    if ids is not None:  # what RequestIdFilter adds to a record, in its order
        fields["trace_id"], fields["span_id"] = ids
    sole = _sole_handler(access_log)
    if sole is not None:
        handler, formatter = sole
        try:
            line = formatter.line(access_log.name, "request", fields)
        except Exception:  # noqa: BLE001 - the record's own path reports it (handleError)
            line = None
        if line is not None and handler.write(line):
            return response
    # What access_log.info() does, less its walk up the stack for the caller's file, line and
    # function: they are always these (the line is the function's first).
    record = access_log.makeRecord(
        access_log.name, logging.INFO, __file__, _FINISH_LINE, "request", (), None, _FINISH, fields
    )
    access_log.handle(record)
    return response


def _sole_handler(logger: logging.Logger) -> tuple[StdoutHandler, JsonLines] | None:
    """The one handler an INFO record of ``logger`` would reach (``Logger.callHandlers``: its
    handlers and its parents' while they propagate, those at INFO or below), when it reaches
    just one, ``logger`` filters nothing, and that handler is the JSON lines on stdout
    :func:`logging_config` sets up, filtering with ``RequestIdFilter`` alone (whose fields the
    access record carries already). Then the access record's line is written to it directly:
    the same line, without the logging module's generic path (a ``LogRecord``, the filters,
    the formatter's walk over the record's attributes; served, that path cost about three
    times its in-process cost). Any other set-up (another handler, pytest's capture, a record
    factory or logger class of its own) gets the record through the logging module.
    """
    if logger.filters or type(logger) is not logging.Logger:
        return None
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler.level <= logging.INFO:
                if found is not None:
                    return None
                found = handler
        if not current.propagate:
            break
        current = current.parent
    if (
        type(found) is StdoutHandler
        and type(found.formatter) is JsonLines
        and all(type(each) is RequestIdFilter for each in found.filters)
    ):
        return found, found.formatter
    return None


_FINISH, _FINISH_LINE = _finish_request.__name__, _finish_request.__code__.co_firstlineno


def init_app(app: Flask) -> None:
    """Give every request an id (:class:`RequestIds`) and write one access record for it.

    Call this before any other extension registers request hooks: the access record then
    follows every other after-request hook (Flask calls them last registered first), and so
    shows the status they leave.
    """
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(_finish_request)
