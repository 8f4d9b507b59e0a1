"""The flask-smorest ``Api``: one OpenAPI 3.1 document, problem responses, offline docs.

- ``/api/openapi.json`` serves the document (flask-smorest); ``flask openapi write`` saves it.
- ``/api/docs`` serves Swagger UI 5 from the assets packaged in flask-swagger-ui: no CDN,
  no inline script, so the page works offline and under a strict Content-Security-Policy.
- Every error response in the document is ``application/problem+json`` with the one
  ``Problem`` schema; every operation documents 429 because every operation is rate limited.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from http import HTTPStatus
from importlib import metadata, resources
from typing import Any

import flask_swagger_ui
from apispec import APISpec, BasePlugin
from flask import Blueprint, Flask, Response, render_template, send_from_directory, url_for
from flask_smorest import Api
from werkzeug.routing import IntegerConverter, Map, ValidationError

from app import errors
from app.auth import security_schemes
from app.loader import PluginError, PluginRecord
from powerstrip.conditional import CONDITIONAL, IF_MATCH_PATTERN, READ_METHODS, WRITE_METHODS
from powerstrip.http import (
    ETAG_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENT_REPLAYED_HEADER,
    IF_MATCH_HEADER,
    IF_NONE_MATCH_HEADER,
    LINK_HEADER,
    PAGINATION_HEADER,
    marks,
)
from powerstrip.idempotency import IDEMPOTENT, MAX_KEY_LENGTH
from powerstrip.paging import MAX_CURSOR_LENGTH, MAX_PAGE, PAGINATED
from powerstrip.plugin import Plugin

API_PREFIX = "/api"
DOCS_PATH = f"{API_PREFIX}/docs"
DOCS_BLUEPRINT = "powerstrip-docs"
SPEC_BLUEPRINT = "api-docs"  # flask-smorest's own blueprint serving openapi.json
RATE_LIMITED = HTTPStatus.TOO_MANY_REQUESTS
PROBLEM_SCHEMA = "Problem"
_SCHEMA_COLLISION = re.compile(r"Multiple schemas resolved to the name (\w+)\.")

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class RateLimitResponsePlugin(BasePlugin):
    """Document the 429 answer on every operation."""

    def operation_helper(
        self,
        path: str | None = None,  # noqa: ARG002 - apispec passes it by name
        operations: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        for operation in (operations or {}).values():
            operation.setdefault("responses", {}).setdefault(
                str(RATE_LIMITED.value), RATE_LIMITED.name
            )


class PluginOperationsPlugin(BasePlugin):
    """Tag a plugin's operations with the plugin's name and prefix their operationIds with it.

    Operations of a plugin exempt from rate limits do not document a 429.
    """

    def __init__(self) -> None:
        super().__init__()
        self.plugin: Plugin | None = None
        self.operation_ids: dict[str, str] = {}

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.plugin is None:
            return
        plugin = self.plugin.name
        endpoint = str(getattr(kwargs.get("rule"), "endpoint", path)).rpartition(".")[2]
        for method, operation in (operations or {}).items():
            operation["tags"] = [plugin]
            base = operation.get("operationId") or f"{endpoint}_{method}"
            operation_id = base if base.startswith(f"{plugin}_") else f"{plugin}_{base}"
            if operation_id in self.operation_ids:
                raise PluginError(
                    plugin,
                    f"operationId collision: {operation_id!r} is already used by "
                    f"plugin {self.operation_ids[operation_id]!r}",
                )
            self.operation_ids[operation_id] = plugin
            operation["operationId"] = operation_id
            if self.plugin.rate_limit_exempt:
                operation.get("responses", {}).pop(str(RATE_LIMITED.value), None)


_PAGINATION_SCHEMA = {
    "type": "object",
    "description": "Paging metadata (JSON); page-number members or keyset members",
    "properties": {
        "page_size": {"type": "integer"},
        "page": {"type": "integer"},
        "total": {"type": "integer", "description": "Rows in all (keyset: with total=true)"},
        "total_pages": {"type": "integer"},
        "first_page": {"type": "integer"},
        "last_page": {"type": "integer"},
        "previous_page": {"type": "integer"},
        "next_page": {"type": "integer"},
        "next_cursor": {"type": ["string", "null"], "description": "null on the last page"},
    },
    "required": ["page_size"],
}
_HEADERS: dict[str, dict[str, Any]] = {
    ETAG_HEADER: {"description": "The entity tag of the resource", "schema": {"type": "string"}},
    PAGINATION_HEADER: {
        "description": "Paging metadata, a JSON object",
        "schema": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _PAGINATION_SCHEMA,
        },
    },
    LINK_HEADER: {
        "description": "RFC 8288 links to the first, prev, next and last pages",
        "schema": {"type": "string"},
    },
    IDEMPOTENT_REPLAYED_HEADER: {
        "description": "`true` when this is the stored answer to an earlier request",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def _header_parameter(
    name: str, description: str, *, required: bool = False, **schema: Any
) -> dict[str, Any]:
    return {
        "in": "header",
        "name": name,
        "required": required,
        "schema": {"type": "string", "minLength": 1, **schema},
        "description": description,
    }


def _query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": schema, "description": description}


class HttpSemanticsPlugin(BasePlugin):
    """Document what the SDK's ``@conditional``, ``@paginated`` and ``@idempotent`` add.

    Each decorator marks its view (``powerstrip.http.marks``); this adds the parameters, the
    problem responses and the response headers to the view's operation.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self._app = app

    def operation_helper(
        self,
        path: str | None = None,  # noqa: ARG002 - apispec passes it by name
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        endpoint = getattr(kwargs.get("rule"), "endpoint", None)
        view = self._app.view_functions.get(endpoint) if endpoint else None
        if view is None:
            return
        for method, operation in (operations or {}).items():
            handler = getattr(getattr(view, "view_class", None), method, view)
            self.document(method.upper(), operation, marks(handler))

    @staticmethod
    def document(method: str, operation: dict[str, Any], marked: Mapping[str, Any]) -> None:
        """Add to ``operation`` (of ``method``) what the SDK marks on its view imply."""
        parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
        responses: dict[str, Any] = operation.setdefault("responses", {})
        headers: list[str] = []
        problems: list[HTTPStatus] = []
        if marked.get(CONDITIONAL):
            if method in READ_METHODS:
                parameters.append(
                    _header_parameter(
                        IF_NONE_MATCH_HEADER, "Answer 304 with no body if the ETag still matches"
                    )
                )
                responses["304"] = HTTPStatus.NOT_MODIFIED.name
            if method in WRITE_METHODS:
                parameters.append(
                    _header_parameter(
                        IF_MATCH_HEADER,
                        "The ETag last read (strong comparison), or * for any version; "
                        "without it 428, malformed 400",
                        required=True,
                        pattern=IF_MATCH_PATTERN,
                    )
                )
                problems += [HTTPStatus.PRECONDITION_FAILED, HTTPStatus.PRECONDITION_REQUIRED]
            if method != "DELETE":
                headers.append(ETAG_HEADER)
        paging = marked.get(PAGINATED)
        if paging:
            parameters += _paging_parameters(paging)
            headers += [PAGINATION_HEADER, LINK_HEADER]
            problems.append(HTTPStatus.UNPROCESSABLE_ENTITY)
        if marked.get(IDEMPOTENT):
            parameters.append(
                _header_parameter(
                    IDEMPOTENCY_KEY_HEADER,
                    "Repeat the request safely: the same key and request replay the first "
                    "success; another request with the key answers 422; while the first "
                    f"runs, 409. 1 to {MAX_KEY_LENGTH} printable ASCII characters (else 422)",
                    maxLength=MAX_KEY_LENGTH,
                    pattern="^[\\x20-\\x7e]+$",
                )
            )
            headers.append(IDEMPOTENT_REPLAYED_HEADER)
            problems += [HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY]
        # The host's input guard (app.inputs) answers any operation: 400 for a URL that is not
        # UTF-8 or a body that is not JSON or too deep, 422 naming a value no column stores.
        problems += [HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY]
        for problem in problems:
            responses.setdefault(str(problem.value), problem.name)
        for status, response in responses.items():
            if str(status).startswith("2") and isinstance(response, dict):
                for header in headers:
                    response.setdefault("headers", {})[header] = _HEADERS[header]
        if not parameters:
            del operation["parameters"]


def _paging_parameters(paging: Mapping[str, Any]) -> list[dict[str, Any]]:
    maximum, default = paging["max_page_size"], paging["default_page_size"]
    parameters = [
        _query_parameter(
            "page",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
            "The page number",
        ),
        _query_parameter(
            "page_size",
            {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
            f"Items per page (at most {maximum}; more is a 422 problem)",
        ),
    ]
    if paging["keyset"]:
        parameters += [
            _query_parameter(
                "cursor",
                {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
                "Keyset paging: empty for the first page, then the next_cursor of the last "
                "(opaque: any other value is a 422 problem). Not together with page (422)",
            ),
            _query_parameter(
                "total", {"type": "boolean"}, "Keyset paging: also count the matching items"
            ),
        ]
    return parameters


class PowerstripApi(Api):  # type: ignore[misc]
    """flask-smorest's ``Api`` answering and documenting errors as RFC 9457 problems."""

    ERROR_SCHEMA = errors.ProblemSchema

    def __init__(self, app: Flask) -> None:
        self.plugin_operations = PluginOperationsPlugin()
        super().__init__(
            app,
            spec_kwargs={
                "extra_plugins": [
                    RateLimitResponsePlugin(),
                    HttpSemanticsPlugin(app),
                    self.plugin_operations,
                ],
                "info": {"description": "A REST API composed of plugins."},
            },
        )

    def register_plugin(self, plugin: Plugin, url_prefix: str) -> list[str]:
        """Mount a plugin's blueprints under ``url_prefix``, documented under its tag.

        apispec only warns when two schemas resolve to one name (and renames one); a plugin
        doing that would silently change another's documented contract, so it is refused.
        """
        self.plugin_operations.plugin = plugin
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                names = [
                    self._register_blueprint(plugin, blueprint, url_prefix)
                    for blueprint in plugin.blueprints
                ]
            finally:
                self.plugin_operations.plugin = None
        for warning in caught:
            match = _SCHEMA_COLLISION.match(str(warning.message))
            if match:
                raise PluginError(
                    plugin.name,
                    f"schema-name collision: {match[1]!r} is already in the OpenAPI document; "
                    "rename the schema class",
                )
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        if plugin.blueprints:
            self.spec.tag({"name": plugin.name, "description": plugin.description})
        return names

    def _register_blueprint(self, plugin: Plugin, blueprint: Any, url_prefix: str) -> str:
        several = len(plugin.blueprints) > 1
        name = f"{plugin.name}_{blueprint.name}" if several else plugin.name
        prefix = url_prefix + (blueprint.url_prefix or "")
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blueprint, url_prefix=prefix, name=name)
        blueprint.register_views_in_doc(self, self._app, self.spec, name=name, parameters=None)
        return name

    def _register_error_handlers(self) -> None:
        """Do nothing: ``create_app`` installs :mod:`app.errors` for the whole app."""

    def _register_responses(self) -> None:
        spec: APISpec = self.spec
        # The Problem schema is resolved once; the ~60 error responses refer to it by $ref
        # (handing each one the schema class cost a full marshmallow resolution apiece).
        spec.components.schema(PROBLEM_SCHEMA, schema=self.ERROR_SCHEMA)
        problem = {"schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}}
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= HTTPStatus.BAD_REQUEST:
                response["content"] = {errors.PROBLEM_CONTENT_TYPE: dict(problem)}
            if status == RATE_LIMITED:
                response["headers"] = {
                    "Retry-After": {
                        "description": "When the client may try again (HTTP date)",
                        "schema": {"type": "string"},
                    }
                }
            spec.components.response(status.name, response, lazy=True)
        spec.components.response(
            "DEFAULT_ERROR",
            {
                "description": "Error (RFC 9457 problem details)",
                "content": {errors.PROBLEM_CONTENT_TYPE: dict(problem)},
            },
            lazy=True,
        )


def _docs_page() -> str:
    return render_template(
        "powerstrip_docs.html",
        title="Powerstrip",
        assets=url_for(f"{DOCS_BLUEPRINT}.static", filename="").rstrip("/"),
        spec_url=url_for(f"{SPEC_BLUEPRINT}.openapi_json"),
        init_js=url_for(f"{DOCS_BLUEPRINT}.init_js"),
    )


def _init_js() -> Response:
    static = resources.files("app") / "static"
    return send_from_directory(str(static), "docs-init.js", mimetype="text/javascript")


def _docs_csp(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


def docs_blueprint() -> Blueprint:
    """Swagger UI 5 served from flask-swagger-ui's packaged assets."""
    assets = resources.files(flask_swagger_ui) / "dist"
    blueprint = Blueprint(
        DOCS_BLUEPRINT,
        __name__,
        url_prefix=DOCS_PATH,
        static_folder=str(assets),
        static_url_path="/assets",
        template_folder="templates",
    )
    blueprint.add_url_rule("", "page", _docs_page)
    blueprint.add_url_rule("/init.js", "init_js", _init_js)
    blueprint.after_request(_docs_csp)
    return blueprint


def init_app(app: Flask) -> PowerstripApi:
    """Create the Api, serve the OpenAPI document and the docs page."""
    app.config.update(
        API_TITLE="Powerstrip",
        API_VERSION=metadata.version("powerstrip"),
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
    )
    api = PowerstripApi(app)
    app.register_blueprint(docs_blueprint())
    return api


def document_security(api: PowerstripApi, enabled: list[PluginRecord]) -> None:
    """The security schemes, listing every scope the enabled plugins declare."""
    scopes = {
        scope: text
        for record in enabled
        if record.plugin is not None
        for scope, text in record.plugin.scopes.items()
    }
    for name, scheme in security_schemes(scopes).items():
        api.spec.components.security_scheme(name, scheme)


class IdConverter(IntegerConverter):
    """Flask's ``<int:...>``, bounded to a signed 64-bit integer (the widest id a database
    column holds): a larger number names nothing, so the route does not match (a 404), instead
    of the driver failing on it (SQLite: OverflowError, a 500)."""

    MAX = 2**63 - 1
    LONGEST = len(str(-MAX))  # 20 characters: a sign and 19 digits

    def __init__(
        self,
        url_map: Map,
        fixed_digits: int = 0,
        min: int | None = None,  # noqa: A002 - werkzeug's argument names
        max: int | None = None,  # noqa: A002
        signed: bool = False,
    ) -> None:
        bounded = self.MAX if max is None or max > self.MAX else max
        super().__init__(url_map, fixed_digits, min, bounded, signed)

    def to_python(self, value: str) -> Any:
        """The integer, or no match; a value longer than MAX (and its sign) is never parsed."""
        if len(value) > self.LONGEST:
            raise ValidationError
        return super().to_python(value)
