"""The conformance suite: what the host promises users about every plugin, checked on one.

``plugin_conformance("NAME")`` (a fixture of the kit) builds the real app with the plugin and
the plugins it requires, and checks:

- **loading**: it loads in strict mode (the production default);
- **migrations**: from an empty database they upgrade, agree with the models (``db check``),
  downgrade the plugin's branch to base (leaving none of its tables) and upgrade again;
- **tables**: every table its migrations create is named ``<plugin>_...`` (the host refuses
  to load a plugin whose models' tables are not);
- **operations**: every route is in the OpenAPI document, tagged with the plugin, with an
  operationId ``<plugin>_...``; an operation with a body documents 400 and 422;
- **bad input**, sent to every operation as a caller holding the scopes it requires: a
  malformed JSON body, each body field with a value of the wrong type (and null where null is
  not allowed), a word for each numeric or boolean query parameter, and path parameters naming
  nothing (and numbers beyond 64 bits), strings with NUL or a lone surrogate in each string
  field and NUL in each query parameter. Every answer must be a documented
  ``application/problem+json`` error, never a 5xx; a wrong-typed field of a declared type, and
  a string no database stores, must be refused;
- **field bounds**: parameters and body fields named like one of the plugin's columns fit it
  (a string's maxLength, a 32-bit column's range);
- **settings**: a setting named like a secret (``..._TOKEN``, ``..._PASSWORD``, ``..._KEY``...)
  is marked ``metadata={"secret": True}`` (or explicitly ``False``), and ``flask plugins config``
  prints no secret value.

It reports every failure at once, one line each, naming the operation and the probe; a 5xx
names the exception the server logged and where it was raised.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import pytest

from powerstrip.http import IDEMPOTENCY_KEY_HEADER, IF_MATCH_HEADER, REQUIRES, marks
from powerstrip.plugin import ENTRY_POINT_GROUP, InjectorModule, Plugin

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient
    from werkzeug.test import TestResponse

    from powerstrip.testing import AppFactory

PROBLEM_JSON = "application/problem+json"
OPENAPI_PATH = "/api/openapi.json"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MALFORMED_BODY = b'{"conformance": '
UNSTORABLE_STRINGS = ("con\x00formance", "con\ud800formance")  # NUL, a lone surrogate
UNKNOWN_ID = 987654321
BEYOND_64_BITS = 2**64
UNKNOWN_UUID = "00000000-0000-4000-8000-0000c0ffee00"
UNKNOWN_STRING = "conformance-unknown"
MIN_SECRET_LENGTH = 4  # shorter strings could appear in the output by chance
# A setting whose name ends with one of these words (``SIGNING_KEYS``, ``SMTP_PASSWORD``)
# looks secret: it must say whether it is (``metadata={"secret": True}`` or ``False``).
SECRET_WORDS = frozenset(
    {
        *("SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE"),
        *("TOKEN", "TOKENS", "KEY", "KEYS", "APIKEY", "CREDENTIAL", "CREDENTIALS", "DSN"),
    }
)
_FORMATS = {
    "email": "conformance@example.com",
    "date-time": "2030-01-01T00:00:00+00:00",
    "date": "2030-01-01",
    "time": "12:00:00",
    "uuid": UNKNOWN_UUID,
    "uri": "https://example.com/conformance",
    "url": "https://example.com/conformance",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}
# One value of each JSON type: a field of a declared type gets the first that is not of it.
_WRONG_VALUES: tuple[tuple[str, object], ...] = (
    ("integer", 12345),
    ("string", "conformance"),
    ("array", []),
    ("object", {"conformance": 1}),
    ("boolean", True),
)
_WORD = "conformance"
_NOT_WORDS = frozenset({"integer", "number", "boolean"})  # query types a word is not
_PATH_PARAMETER = re.compile(r"\{([^}]+)\}")
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_DATABASE = "powerstrip.database"  # app.db.DATABASE
_PLUGINS = "powerstrip.plugins"  # app.factory.PLUGINS: name -> the app's record of the plugin


class PluginConformance(Protocol):
    """The type of the ``plugin_conformance`` fixture."""

    def __call__(
        self,
        name: str,
        *,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        modules: Sequence[InjectorModule] = (),
    ) -> ConformanceReport: ...


@dataclass
class ConformanceReport:
    """What the suite checked on a plugin, and what failed (one line each)."""

    plugin: str
    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    requests: int = 0

    def check(self, what: str) -> None:
        """Record that ``what`` was checked."""
        self.checked.append(what)

    def fail(self, check: str, message: str) -> None:
        """Record a failure of ``check``."""
        self.failures.append(f"[{check}] {message}")

    def summary(self) -> str:
        """The failures as a pytest failure message."""
        lines = "\n".join(f"  - {failure}" for failure in self.failures)
        return (
            f"plugin {self.plugin!r} fails {len(self.failures)} conformance check(s) "
            f"({len(self.checked)} checks, {self.requests} requests):\n{lines}"
        )


class _Captured(logging.Handler):
    """Error log records with an exception: why the server answered 5xx."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> str:
        """The last recorded error, as ``Type: message at file:line``, and forget them all."""
        records, self.records = self.records, []
        for record in reversed(records):
            if record.exc_info and record.exc_info[1] is not None:
                return _described(record.exc_info[1])
        return records[-1].getMessage() if records else ""


def _described(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    message = str(error).partition("\n")[0]  # SQLAlchemy's errors go on with the SQL
    return f"{type(error).__name__}: {message}{where}"


@contextmanager
def _capturing() -> Iterator[_Captured]:
    handler = _Captured()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass(frozen=True, slots=True)
class _Installed:
    """A plugin found through its entry point, and the plugins to enable with it."""

    plugin: Plugin
    closure: tuple[str, ...]


def _installed(name: str, also: Sequence[str]) -> _Installed:
    """Load plugin ``name`` from its entry point; its requirements, transitively, by name,
    and the plugins in ``also`` (and theirs)."""
    entry_points = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if name not in entry_points:
        pytest.fail(
            f"no plugin {name!r} is installed (no entry point {name!r} in the group "
            f"{ENTRY_POINT_GROUP!r}): install its distribution, editable, in this environment",
            pytrace=False,
        )
    plugin = entry_points[name].load()
    if not isinstance(plugin, Plugin):
        pytest.fail(f"plugin {name!r}: its entry point is not a powerstrip.Plugin", pytrace=False)
    closure, pending = [name], [*also, *plugin.requires]
    while pending:
        required = pending.pop()
        if required in closure:
            continue
        closure.append(required)
        if required in entry_points:  # a missing one: the strict load names it
            value = entry_points[required].load()
            pending += list(getattr(value, "requires", ()))
    return _Installed(plugin, tuple(closure))


def run(
    make_app: AppFactory,
    name: str,
    *,
    plugins: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    modules: Sequence[InjectorModule] = (),
) -> ConformanceReport:
    """Check plugin ``name`` (with ``plugins`` enabled too); the report lists the failures."""
    installed = _installed(name, plugins)
    report = ConformanceReport(name)
    settings = {**(config or {}), "PLUGINS_STRICT": True}
    try:
        app = make_app(*installed.closure, config=settings, modules=modules, migrated=False)
    except Exception as exc:  # noqa: BLE001 - whatever stops it loading is the finding
        report.fail("loading", f"does not load in strict mode: {exc}")
        return report
    report.check("loads in strict mode")  # so its models' tables are prefixed: the host checks
    # Building an app configures logging (and drops foreign handlers): capture after it.
    with _capturing() as captured:
        migrated = _check_migrations(report, app, installed, captured)
    if migrated:
        probing = make_app(
            *installed.closure, config={**settings, "RATELIMIT_ENABLED": False}, modules=modules
        )
        with _capturing() as captured:
            _check_operations(report, probing, installed, captured)
    _check_settings(report, installed, config or {}, app)
    return report


# -- tables and migrations ---------------------------------------------------------------------


def _owned(table: str, name: str, closure: Sequence[str]) -> bool:
    """Whether ``table`` is named for plugin ``name`` (not for a longer-named one)."""
    longer = [other for other in closure if len(other) > len(name)]
    return table.startswith(f"{name}_") and not any(table.startswith(f"{o}_") for o in longer)


def _tables(app: Flask) -> set[str]:
    from sqlalchemy import inspect  # noqa: PLC0415

    engine = app.extensions[_DATABASE].engine
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def _check_migrations(
    report: ConformanceReport, app: Flask, installed: _Installed, captured: _Captured
) -> bool:
    """Upgrade, check, downgrade the plugin's branch, upgrade; whether the first upgrade ran
    (then the kit can migrate a database for the other checks)."""
    runner = app.test_cli_runner()
    name = report.plugin

    def step(args: list[str], what: str) -> bool:
        result = runner.invoke(args=args)
        report.check(f"migrations: {what}")
        if result.exit_code != 0:
            error = result.exception
            if error is not None and not isinstance(error, SystemExit):
                detail = _described(error)
            else:  # a refusal the command logged (flask-migrate logs, then exits 1)
                detail = captured.take() or result.output.strip().rpartition("\n")[2]
            report.fail("migrations", _one_line(f"{what} failed: {detail}"))
            return False
        return True

    if not step(["db", "upgrade"], "upgrade from an empty database"):
        return False
    owners = ("host", *installed.closure)
    for table in sorted(_tables(app) - {"alembic_version"}):
        report.check(f"table {table} is prefixed")
        if not any(_owned(table, owner, owners) for owner in owners):
            report.fail(
                "tables",
                f"the migrations create {table!r}, named for no enabled plugin "
                f"(a table of {name!r} is named {name}_...)",
            )
    step(["db", "check"], "the models agree with the migrations (db check)")
    if installed.plugin.migrations is not None and step(
        ["db", "downgrade", f"{name}@base"], f"downgrade {name}@base"
    ):
        left = sorted(t for t in _tables(app) if _owned(t, name, installed.closure))
        report.check("downgrade to base drops every table")
        if left:
            report.fail("migrations", f"downgrade {name}@base leaves {', '.join(left)}")
        step(["db", "upgrade"], "upgrade again after the downgrade")
    return True


def _one_line(text: str, limit: int = 600) -> str:
    """A failure's text on one line, cut at ``limit`` characters."""
    joined = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined if len(joined) <= limit else f"{joined[: limit - 3]}..."


# -- operations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Operation:
    method: str
    path: str  # the OpenAPI path, /api/v1/hello/greetings/{name}
    spec: Mapping[str, Any]
    view: Callable[..., Any]
    parameters: Sequence[Mapping[str, Any]]  # the path's and the operation's

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def documented(self) -> set[str]:
        return {str(status) for status in self.spec.get("responses", {})}


def _operations(report: ConformanceReport, app: Flask, installed: _Installed) -> list[_Operation]:
    name = report.plugin
    blueprints = {name} | {f"{name}_{bp.name}" for bp in installed.plugin.blueprints}
    spec = app.test_client().get(OPENAPI_PATH).get_json()
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.rpartition(".")[0] not in blueprints:
            continue
        path = _RULE_ARGUMENT.sub(r"{\1}", rule.rule)
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = spec["paths"].get(path, {}).get(method.lower())
            report.check(f"{method} {path} is documented")
            if operation is None:
                report.fail("documentation", f"{method} {path} is not in the OpenAPI document")
                continue
            handler = getattr(getattr(view, "view_class", None), method.lower(), view)
            parameters = [
                *spec["paths"][path].get("parameters", []),
                *operation.get("parameters", []),
            ]
            found.append(_Operation(method, path, operation, handler, parameters))
    return found


def _check_documentation(report: ConformanceReport, operation: _Operation) -> None:
    name = report.plugin
    spec = operation.spec
    report.check(f"{operation}: tag, operationId, error responses")
    if name not in spec.get("tags", []):
        report.fail("documentation", f"{operation}: not tagged {name!r} (tags: {spec.get('tags')})")
    operation_id = spec.get("operationId", "")
    if not operation_id.startswith(f"{name}_"):
        report.fail(
            "documentation", f"{operation}: operationId {operation_id!r} does not start {name}_"
        )
    if "requestBody" in spec:
        missing = sorted({"400", "422"} - operation.documented)
        if missing:
            report.fail(
                "documentation", f"{operation}: takes a body but documents no {', '.join(missing)}"
            )


class _Schemas:
    """Values for OpenAPI schemas: valid ones (from examples and constraints) and wrong ones."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._components: Mapping[str, Any] = spec.get("components", {}).get("schemas", {})

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """The schema a ``$ref`` (or the first of ``allOf``/``oneOf``/``anyOf``) names."""
        for _ in range(32):  # a cycle of references ends here
            if "$ref" in schema:
                schema = self._components.get(str(schema["$ref"]).rpartition("/")[2], {})
            elif any(key in schema for key in ("allOf", "oneOf", "anyOf")):
                combined = schema.get("allOf") or schema.get("oneOf") or schema.get("anyOf")
                schema = combined[0] if combined else {}
            else:
                break
        return schema

    @staticmethod
    def types(schema: Mapping[str, Any]) -> set[str]:
        """The JSON types the schema declares (none: anything)."""
        declared = schema.get("type")
        if isinstance(declared, str):
            return {declared}
        return set(declared) if isinstance(declared, list) else set()

    def valid(self, schema: Mapping[str, Any], depth: int = 0) -> object:
        """A value the schema accepts, as far as its example or constraints tell."""
        schema = self.resolve(schema)
        for key in ("example", "default", "const"):
            if key in schema:
                return schema[key]
        for key in ("examples", "enum"):
            if schema.get(key):
                return schema[key][0]
        return self._of_type(schema, depth)

    def _of_type(self, schema: Mapping[str, Any], depth: int) -> object:
        kind = min(self.types(schema) - {"null"}, default="string")
        if kind == "object" and depth < 8:
            properties = schema.get("properties", {})
            return {
                key: self.valid(properties.get(key, {}), depth + 1)
                for key in schema.get("required", [])
            }
        if kind == "array" and depth < 8:
            return [self.valid(schema.get("items", {}), depth + 1)] * schema.get("minItems", 0)
        if kind in {"integer", "number"}:
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
            value = min(max(low, 1), schema.get("maximum", low if low > 1 else 1))
            return int(value) if kind == "integer" else float(value)
        if kind == "boolean":
            return True
        if schema.get("format") in _FORMATS:
            return _FORMATS[str(schema["format"])]
        text = "conformance"[: schema.get("maxLength", 11)]
        return text.ljust(schema.get("minLength", 0), "x")

    def wrong(self, schema: Mapping[str, Any]) -> tuple[bool, list[object]]:
        """Whether the schema declares a type, and values it must refuse (or at least survive)."""
        schema = self.resolve(schema)
        types = self.types(schema)
        if "number" in types:
            types.add("integer")
        if not types:
            return False, [value for _, value in _WRONG_VALUES]
        wrong = [next(value for kind, value in _WRONG_VALUES if kind not in types)]
        return True, wrong if "null" in types else [*wrong, None]


def _request_body(operation: _Operation) -> Mapping[str, Any] | None:
    content = operation.spec.get("requestBody", {}).get("content", {})
    body = content.get("application/json")
    return body.get("schema", {}) if body is not None else None


def _created_id(response: TestResponse, collection: str, parameter: str) -> str | None:
    """The id of what a 2xx answer to a POST on ``collection`` created: the segment after the
    collection in its ``Location``, else its body's ``parameter`` or ``id``."""
    if not 200 <= response.status_code < 300:
        return None
    location = urlsplit(response.headers.get("Location", "")).path
    if location.startswith(f"{collection}/"):
        return location[len(collection) + 1 :].split("/")[0] or None
    body = response.get_json(silent=True)
    found = body.get(parameter, body.get("id")) if isinstance(body, dict) else None
    return quote(str(found), safe="") if found is not None else None


def _path(operation: _Operation, number: int = UNKNOWN_ID) -> str:
    """The operation's path with every path parameter naming nothing (numbers: ``number``)."""
    values: dict[str, str] = {}
    for parameter in operation.parameters:
        if parameter.get("in") == "path":
            schema = parameter.get("schema", {})
            kind, fmt = schema.get("type"), schema.get("format")
            value = UNKNOWN_UUID if fmt == "uuid" else UNKNOWN_STRING
            values[parameter["name"]] = str(number) if kind in {"integer", "number"} else value
    return _PATH_PARAMETER.sub(lambda m: values.get(m[1], UNKNOWN_STRING), operation.path)


class _Prober:
    """Sends the bad inputs to one operation and judges the answers."""

    def __init__(
        self,
        report: ConformanceReport,
        app: Flask,
        schemas: _Schemas,
        captured: _Captured,
        creators: Mapping[str, _Operation],
    ) -> None:
        self._report = report
        self._app = app
        self._schemas = schemas
        self._captured = captured
        self._creators = creators  # collection path -> its POST operation

    def client(self, operation: _Operation) -> FlaskClient:
        from powerstrip.testing import caller_client  # noqa: PLC0415 - a cycle otherwise

        scopes = marks(operation.view).get(REQUIRES, ())
        return caller_client(self._app, *scopes, subject="conformance")

    def send(
        self, operation: _Operation, path: str, *, body: object = None, raw: bytes | None = None
    ) -> TestResponse:
        headers = {}
        if operation.method in WRITE_METHODS - {"POST"}:
            headers[IF_MATCH_HEADER] = "*"
        if operation.method == "POST":
            headers[IDEMPOTENCY_KEY_HEADER] = uuid.uuid4().hex
        self._report.requests += 1
        client = self.client(operation)
        if raw is not None:
            return client.open(
                path,
                method=operation.method,
                data=raw,
                content_type="application/json",
                headers=headers,
            )
        if body is not None:
            return client.open(path, method=operation.method, json=body, headers=headers)
        return client.open(path, method=operation.method, headers=headers)

    def judge(
        self,
        operation: _Operation,
        probe: str,
        response: TestResponse,
        *,
        refused: bool,
        documented: bool = True,
    ) -> None:
        """A 5xx, an undocumented or non-problem error, or (``refused``) a success, fail."""
        status = response.status_code
        self._report.check(f"{operation}: {probe}")
        why = f"{operation}: {probe}: answered {status}"
        if status >= 500:
            cause = self._captured.take()
            self._report.fail("bad input", _one_line(f"{why} ({cause})" if cause else why))
        elif status >= 400:
            if response.mimetype != PROBLEM_JSON:
                self._report.fail("bad input", f"{why} as {response.mimetype}, not {PROBLEM_JSON}")
            if documented and str(status) not in operation.documented:
                self._report.fail("documentation", f"{why}, which the operation does not document")
        elif refused:
            self._report.fail("bad input", f"{why}: a value of the wrong type was accepted")
        self._captured.take()

    def probe(self, operation: _Operation) -> None:
        """Every bad input for ``operation``: its body and query (on resources that exist, when
        it can create them), its path (naming nothing)."""
        unknown = _path(operation)
        path = self.existing(operation) if "{" in operation.path else operation.path
        schema = _request_body(operation)
        on = f" on {path}" if path and path != operation.path else ""
        path = path or unknown
        body = self._probe_body(operation, path, schema, on) if schema is not None else None
        self._probe_query(operation, path, body, on)
        if "{" in operation.path:
            response = self.send(operation, unknown, body=body)
            self.judge(operation, f"unknown path parameters ({unknown})", response, refused=False)
            beyond = _path(operation, BEYOND_64_BITS)
            if beyond != unknown:  # no database column holds it: the router refuses (404, 405)
                response = self.send(operation, beyond, body=body)
                probe = f"path numbers beyond 64 bits ({beyond})"
                self.judge(operation, probe, response, refused=False, documented=False)

    def existing(self, operation: _Operation) -> str | None:
        """``operation``'s path naming resources that exist: each created by the POST of its
        collection with a valid body, found by its ``Location`` (or its ``id``); None if a
        parent cannot be created so."""
        concrete, end = "", 0
        for match in _PATH_PARAMETER.finditer(operation.path):
            collection = concrete + operation.path[end : match.start()].rstrip("/")
            creator = self._creators.get(operation.path[: match.start()].rstrip("/"))
            schema = _request_body(creator) if creator is not None else None
            if creator is None or schema is None:
                return None
            response = self.send(creator, collection, body=self._schemas.valid(schema))
            self.judge(creator, f"a valid body, to probe {operation}", response, refused=False)
            created = _created_id(response, collection, match[1])
            if created is None:
                return None
            concrete, end = f"{collection}/{created}", match.end()
        return concrete + operation.path[end:]

    def _probe_body(
        self, operation: _Operation, path: str, schema: Mapping[str, Any], on: str
    ) -> object:
        """A malformed body, then each field wrong; the valid body the others were based on."""
        response = self.send(operation, path, raw=MALFORMED_BODY)
        self.judge(operation, "a malformed JSON body", response, refused=True)
        body = self._schemas.valid(schema)
        properties = self._schemas.resolve(schema).get("properties", {})
        if not isinstance(body, dict):
            return body
        for key, field_schema in properties.items():
            if field_schema.get("readOnly"):  # the server's to set: not read from a request
                continue
            typed, values = self._schemas.wrong(field_schema)
            for value in values:
                response = self.send(operation, path, body={**body, key: value})
                probe = f"field {key!r} = {json.dumps(value)}{on}"
                self.judge(operation, probe, response, refused=typed)
            if "string" in self._schemas.types(self._schemas.resolve(field_schema)):
                for value in UNSTORABLE_STRINGS:  # no database stores them: always refused
                    response = self.send(operation, path, body={**body, key: value})
                    probe = f"field {key!r} = {json.dumps(value)}{on}"
                    self.judge(operation, probe, response, refused=True)
        return body

    def _probe_query(self, operation: _Operation, path: str, body: object, on: str) -> None:
        """Each query parameter of a numeric or boolean type, given a word instead; each one
        given a value with NUL."""
        for parameter in operation.parameters:
            if parameter.get("in") != "query":
                continue
            query = urlencode({parameter["name"]: UNSTORABLE_STRINGS[0]})
            response = self.send(operation, f"{path}?{query}", body=body)
            probe = f"query parameter {parameter['name']!r} with NUL{on}"
            self.judge(operation, probe, response, refused=True)
            types = self._schemas.types(self._schemas.resolve(parameter.get("schema", {})))
            if not types - {"null"} or not types - {"null"} <= _NOT_WORDS:
                continue  # a string (or anything) may well be a word
            query = urlencode({parameter["name"]: _WORD})
            response = self.send(operation, f"{path}?{query}", body=body)
            probe = f"query parameter {parameter['name']!r} = {_WORD!r}{on}"
            self.judge(operation, probe, response, refused=True)


def _check_operations(
    report: ConformanceReport, app: Flask, installed: _Installed, captured: _Captured
) -> None:
    operations = _operations(report, app, installed)
    spec = app.test_client().get(OPENAPI_PATH).get_json()
    creators = {op.path: op for op in operations if op.method == "POST"}
    prober = _Prober(report, app, _Schemas(spec), captured, creators)
    columns = _Columns(report.plugin, installed.closure)
    for operation in operations:
        _check_documentation(report, operation)
        _check_field_bounds(report, operation, _Schemas(spec), columns)
        prober.probe(operation)


INT32 = (-(2**31), 2**31 - 1)


class _Columns:
    """The bounds of the plugin's own columns by name: text lengths, 32-bit integer ranges."""

    def __init__(self, name: str, closure: Sequence[str]) -> None:
        from sqlalchemy import BigInteger, Integer  # noqa: PLC0415 - the kit stays light

        from powerstrip.db import Model  # noqa: PLC0415

        self.lengths: dict[str, tuple[int, str]] = {}  # name -> (narrowest length, column)
        self.int32: dict[str, str] = {}  # name -> a 32-bit column of that name
        for table in Model.metadata.sorted_tables:
            if not _owned(table.name, name, closure):
                continue
            for column in table.columns:
                where = f"{table.name}.{column.name}"
                length = getattr(column.type, "length", None)
                if (
                    isinstance(length, int)
                    and length < self.lengths.get(column.name, (length + 1,))[0]
                ):
                    self.lengths[column.name] = (length, where)
                kind = column.type
                if isinstance(kind, Integer) and not isinstance(kind, BigInteger):
                    self.int32.setdefault(column.name, where)


def _fields(
    operation: _Operation, schemas: _Schemas
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(where, name, schema) of each value the operation reads: path, query, body fields."""
    for parameter in operation.parameters:
        where = f"{parameter.get('in')} parameter"
        yield where, str(parameter.get("name")), schemas.resolve(parameter.get("schema", {}))
    body = _request_body(operation)
    if body is None:
        return
    for key, field_schema in schemas.resolve(body).get("properties", {}).items():
        resolved = schemas.resolve(field_schema)
        if field_schema.get("readOnly"):
            continue
        yield "field", key, resolved
        if "array" in schemas.types(resolved):
            yield "items of field", key, schemas.resolve(resolved.get("items", {}))


def _check_field_bounds(
    report: ConformanceReport, operation: _Operation, schemas: _Schemas, columns: _Columns
) -> None:
    """A value named like one of the plugin's columns must fit it: a string's maxLength (or
    every enum value) within the narrowest column of that name, an integer within 32 bits
    where the column is 32-bit."""
    for where, name, schema in _fields(operation, schemas):
        types = schemas.types(schema)
        if "string" in types and name in columns.lengths:
            length, column = columns.lengths[name]
            report.check(f"{operation}: {where} {name!r} fits {column}")
            enum = schema.get("enum")
            if enum and all(isinstance(v, str) and len(v) <= length for v in enum):
                continue
            allowed = schema.get("maxLength")
            if not isinstance(allowed, int) or allowed > length:
                report.fail(
                    "field bounds",
                    f"{operation}: {where} {name!r} allows "
                    f"{allowed if isinstance(allowed, int) else 'any number of'} characters; "
                    f"column {column} holds {length} (declare maxLength <= {length})",
                )
        if types & {"integer", "number"} and name in columns.int32:
            column = columns.int32[name]
            report.check(f"{operation}: {where} {name!r} fits {column}")
            low, high = schema.get("minimum"), schema.get("maximum")
            if not (isinstance(low, int | float) and isinstance(high, int | float)) or (
                low < INT32[0] or high > INT32[1]
            ):
                report.fail(
                    "field bounds",
                    f"{operation}: {where} {name!r} allows {low}..{high}; column {column} is "
                    f"32-bit (declare a range within {INT32[0]}..{INT32[1]}, or make the "
                    "column BigInteger)",
                )


# -- settings ----------------------------------------------------------------------------------


def _looks_secret(key: str) -> bool:
    return key.upper().rpartition("_")[2] in SECRET_WORDS


def _secrets_in(value: object) -> Iterator[str]:
    """The strings of a secret setting's value that must not be printed."""
    if isinstance(value, str):
        if "://" in value:  # a URL: its password is the secret
            password = urlsplit(value).password
            if password:
                yield password
        elif len(value) >= MIN_SECRET_LENGTH:
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)


def _check_settings(
    report: ConformanceReport, installed: _Installed, config: Mapping[str, Any], app: Flask
) -> None:
    name = report.plugin
    if installed.plugin.settings is None:
        return
    schema = installed.plugin.settings()
    secrets = {key for key, fld in schema.fields.items() if fld.metadata.get("secret")}
    for key, fld in schema.fields.items():
        report.check(f"setting {key}: secret or not")
        if _looks_secret(key) and "secret" not in fld.metadata:
            report.fail(
                "settings",
                f"setting {key} looks secret: mark it metadata={{'secret': True}} so that "
                "`plugins config` and logs redact it (or {'secret': False} if it is not)",
            )
    section = dict(config.get(name, {}))
    values = schema.dump(app.extensions[_PLUGINS][name].settings)  # as the app loaded them
    shown = {k: v for k, v in values.items() if k in secrets and v not in (None, "", [], {})}
    if not shown:
        return
    output = _plugins_config(app, installed.closure, name, section)
    report.check("plugins config redacts the secret settings")
    for key, value in shown.items():
        if any(secret in output for secret in _secrets_in(value)):
            report.fail("settings", f"`plugins config {name}` prints the secret setting {key}")


def _plugins_config(
    app: Flask, plugins: Sequence[str], name: str, section: Mapping[str, Any]
) -> str:
    """What ``flask plugins config NAME`` prints, for this app's plugins and settings."""
    from click.testing import CliRunner  # noqa: PLC0415

    command = next(
        ep for ep in metadata.entry_points(group="flask.commands") if ep.name == "plugins"
    ).load()
    database = app.extensions[_DATABASE].engine.url.render_as_string(hide_password=False)
    env = {
        "POWERSTRIP_ENVIRONMENT": "testing",
        "POWERSTRIP_INSTANCE_PATH": app.instance_path,
        "POWERSTRIP_DATABASE_URL": database,
        "POWERSTRIP_PLUGINS": json.dumps(list(plugins)),
        **{f"POWERSTRIP_{name.upper()}__{key}": json.dumps(v) for key, v in section.items()},
    }
    result = CliRunner().invoke(command, ["config", name], env=env)
    return str(result.output)
