"""RFC 9457 problem details for every error the API returns.

Exception tree::

    Exception
     +-- werkzeug HTTPException      any HTTP error (abort(404), RateLimitExceeded, ...)
     |    +-- Problem                an HTTP error with a specific type, detail and errors
     +-- SQLAlchemy connection errors the database is unreachable: 503 with Retry-After
     +-- IntegrityError              a unique or foreign-key constraint refused the write: 409
     +-- DataError                   the database refused a client's value (too long, out of
     |                               range: SQLSTATE 22001, 22003, ...): 422
     +-- StaleDataError              an optimistic-concurrency conflict (a Versioned row): 412
     |                               for a request with If-Match, else 409
     +-- anything else               a bug: logged with its traceback, answered with a bare 500
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import marshmallow as ma
import sqlalchemy.exc
from flask import Flask, Response, json, request
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError

from app import logs
from powerstrip.conditional import STALE
from powerstrip.http import REQUEST_ID_HEADER
from powerstrip.problems import Errors, Problem

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PROBLEM_CONTENT_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5
DATA_DETAIL = "A value is too long or out of range for what it is stored in; shorten or correct it."
DATABASE_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)
VALIDATION_ERROR_TYPE = "urn:powerstrip:problem:validation-error"
MAX_LISTED_ERRORS = 50  # fields a problem lists: 60,000 unknown fields answer 50, not 1.8 MB
MAX_FIELD_NAME = 100  # characters of a field's name a problem repeats
CONFLICT_DETAIL = (
    "The request conflicts with the current state of the resource: it already exists, or it "
    "refers to something that no longer does."
)

log = logging.getLogger(__name__)


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem details document (application/problem+json)."""

    type = ma.fields.String(
        required=True, metadata={"description": "URI identifying the problem type"}
    )
    title = ma.fields.String(required=True, metadata={"description": "Summary of the type"})
    status = ma.fields.Integer(required=True, metadata={"description": "HTTP status code"})
    detail = ma.fields.String(metadata={"description": "Explanation of this occurrence"})
    instance = ma.fields.String(
        required=True, metadata={"description": "The request path that failed"}
    )
    request_id = ma.fields.String(
        required=True, metadata={"description": "Correlates the problem with the logs"}
    )
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={
            "description": f"Field -> messages, for validation problems (at most "
            f"{MAX_LISTED_ERRORS} fields; omitted_errors counts the rest)"
        },
    )
    omitted_errors = ma.fields.Integer(
        metadata={"description": "Fields with errors not listed in errors (when there are)"}
    )


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten nested marshmallow/webargs messages into dotted field paths -> messages."""
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, field_messages in flatten_messages(value, name).items():
                flat.setdefault(field, []).extend(field_messages)
        return flat
    if isinstance(messages, list | tuple):
        flat = {}
        for item in messages:
            for field, field_messages in flatten_messages(item, prefix).items():
                flat.setdefault(field, []).extend(field_messages)
        return flat
    return {prefix or "_schema": [str(messages)]}


def _webargs_errors(error: HTTPException) -> dict[str, list[str]] | None:
    # flask-smorest's abort() stores webargs messages as {location: {field: [messages]}}.
    data = getattr(error, "data", None)
    if not isinstance(data, Mapping):
        return None
    messages = data.get("errors", data.get("messages"))
    if not isinstance(messages, Mapping):
        return None
    flat = flatten_messages(messages)
    # Body fields are named as the client sent them; other locations keep a prefix (query.page).
    return {field.removeprefix("json."): msgs for field, msgs in flat.items()}


def problem_response(
    status: int,
    *,
    detail: str | None,
    type: str = "about:blank",  # noqa: A002 - the RFC 9457 member name
    title: str | None = None,
    errors: Errors | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build an application/problem+json response for the current request."""
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
        "instance": request.path,
        "request_id": logs.request_id(request.environ),
    }
    if errors:
        listed = itertools.islice(errors.items(), MAX_LISTED_ERRORS)
        body["errors"] = {_field_name(field): list(messages) for field, messages in listed}
        if len(errors) > MAX_LISTED_ERRORS:
            body["omitted_errors"] = len(errors) - MAX_LISTED_ERRORS
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _field_name(field: str) -> str:
    """A field's name as a problem repeats it: a client's 1 MB key is not echoed whole."""
    return field if len(field) <= MAX_FIELD_NAME else f"{field[:MAX_FIELD_NAME]}..."


_DETAILS = {
    400: "The request could not be understood.",
    404: "No resource exists at this path.",
    413: "The request body is larger than this server accepts.",
}


def handle_http_exception(error: HTTPException) -> Response:
    """Answer any werkzeug HTTP error (and :class:`Problem`) with a problem document."""
    status = error.code or 500
    headers = {name: value for name, value in error.get_headers() if name != "Content-Type"}
    if isinstance(error, Problem):
        return problem_response(
            status,
            detail=error.description,
            type=error.type,
            title=error.title,
            errors=error.errors,
            headers={**headers, **error.extra_headers},
        )
    errors = _webargs_errors(error)
    if status == 400 and errors and "json" in errors:
        return problem_response(400, detail="The request body is not valid JSON.", errors=errors)
    if status == 422 and errors:
        return problem_response(
            422,
            detail="The request did not pass validation; see errors.",
            type=VALIDATION_ERROR_TYPE,
            title="Validation failed",
            errors=errors,
        )
    detail: str | None
    if status >= 500:
        # Werkzeug descriptions of 5xx may carry internals handed to abort(); use ours.
        detail = HTTPStatus(status).description
    else:
        detail = _DETAILS.get(status, error.description)
    return problem_response(status, detail=detail, errors=errors, headers=headers)


def handle_unexpected_exception(error: Exception) -> Response:
    """Log a bug with its traceback and answer a bare 500 that reveals nothing.

    A database that cannot be reached (down, restarting, pool exhausted) is not a bug: it is
    a 503 the client may retry, logged as a warning.
    """
    if isinstance(error, HTTPException):  # pragma: no cover - routed to the other handler
        return handle_http_exception(error)
    if isinstance(error, DATABASE_UNAVAILABLE):
        # Or DATABASE_STATEMENT_TIMEOUT: the server cancelled a statement that ran too long
        # (an overloaded database, a missing index); the worker is free again.
        timed_out = _sqlstate(error) == QUERY_CANCELED
        message = "statement timed out" if timed_out else "database unavailable"
        log.warning(message, exc_info=error, extra={"path": request.path})
        return problem_response(
            503,
            detail=STATEMENT_TIMED_OUT if timed_out else DATABASE_DOWN,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(error, sqlalchemy.exc.IntegrityError):
        # A race the service's own check could not see (two creates of one unique value at
        # once) or a reference to something already gone. The unit of work rolled back; the
        # constraint's name and the SQL stay in the log.
        log.warning("integrity conflict", exc_info=error, extra={"path": request.path})
        return problem_response(409, detail=CONFLICT_DETAIL)
    if isinstance(error, sqlalchemy.exc.DataError) and _refused_input(error):
        # A value the request carried that validation let through but the column cannot hold
        # (a plugin's schema without the column's length): the client's input, not a crash.
        log.warning("value refused by the database", exc_info=error, extra={"path": request.path})
        return problem_response(422, detail=DATA_DETAIL)
    if isinstance(error, StaleDataError):
        # Another commit changed the row between our read (and its If-Match check) and our
        # versioned UPDATE: the precondition no longer holds.
        # With If-Match: * the client accepted any version, so the race is a conflict.
        precondition = request.if_match and not request.if_match.star_tag
        return problem_response(412 if precondition else 409, detail=STALE)
    log.error("unhandled exception", exc_info=error, extra={"path": request.path})
    return problem_response(500, detail=InternalServerError.description)


# SQLSTATEs of a value the client sent that the column cannot hold: too long, out of range,
# not a valid number/date, a bad byte sequence. Other data errors (division by zero...) are
# bugs, answered 500.
DATABASE_DOWN = "The database is unavailable; try again shortly."
STATEMENT_TIMED_OUT = "The database took too long to answer; try again shortly."
QUERY_CANCELED = "57014"  # PostgreSQL: statement_timeout (or a cancel request)
REFUSED_INPUT_STATES = frozenset({"22001", "22003", "22007", "22008", "22021", "22P02", "22P05"})


def _refused_input(error: sqlalchemy.exc.DataError) -> bool:
    return _sqlstate(error) in REFUSED_INPUT_STATES


def _sqlstate(error: Exception) -> str | None:
    """The SQLSTATE of a database error (psycopg's), else None."""
    state = getattr(getattr(error, "orig", None), "sqlstate", None)
    return state if isinstance(state, str) else None


class LastResort:
    """WSGI middleware, outermost: an exception no handler turned into a response (raised by
    a middleware, or by an error handler itself) answers a problem+json 500 carrying the
    request's id, where the server would answer its own HTML page. An exception after the
    response started cannot change it: it is re-raised for the server to drop the connection.
    """

    def __init__(self, wsgi_app: WSGIApplication, headers: Iterable[tuple[str, str]] = ()) -> None:
        """``headers``: added to its 500 (the security headers every answer carries)."""
        self._wsgi_app = wsgi_app
        self._headers = list(headers)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = False

        def tracking(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal started
            started = True
            return start_response(status, headers, exc_info)

        try:
            return self._wsgi_app(environ, tracking)
        except Exception:
            if started:
                raise
            request_id = logs.request_id(environ)  # the one its log lines carry
            log.exception(
                "unhandled exception outside the app",
                extra={"path": environ.get("PATH_INFO", ""), "request_id": request_id},
            )
            body = json.dumps(
                {
                    "type": "about:blank",
                    "title": "Internal Server Error",
                    "status": 500,
                    "detail": InternalServerError.description,
                    "instance": environ.get("PATH_INFO", ""),
                    "request_id": request_id,
                }
            ).encode()
            start_response(
                "500 INTERNAL SERVER ERROR",
                [
                    ("Content-Type", PROBLEM_CONTENT_TYPE),
                    ("Content-Length", str(len(body))),
                    (REQUEST_ID_HEADER, request_id),
                    *self._headers,
                ],
            )
            return [body]


def init_app(app: Flask) -> None:
    """Make every error response a problem document."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected_exception)
