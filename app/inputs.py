"""One guard before every view refuses whole classes of input no plugin should ever see.

Plugins validate their own fields with marshmallow; what a schema cannot express, or a plugin
could forget, is refused here for every route at once, with an RFC 9457 problem:

- the path: bytes that are not UTF-8 (400: werkzeug would turn them into U+FFFD and a view
  would store that), or NUL (404: no resource is named by it);
- the query string: not UTF-8 (400); a value or name with NUL (422 naming the parameter:
  PostgreSQL refuses NUL in text);
- the body, on POST/PUT/PATCH/DELETE: not JSON (415); larger than ``MAX_CONTENT_LENGTH``,
  including a chunked body that declares no length (413; werkzeug silently cuts such a body at
  the limit); nested deeper than :data:`MAX_DEPTH` (400); ``NaN``/``Infinity``, which are not
  JSON (400); and a 422 naming each field that holds a string with NUL or a lone surrogate
  (no database stores them), an integer beyond a signed 64-bit one (no column holds it; the
  digits are never converted, so a number of 100,000 digits costs nothing) or a number beyond
  a double's range (``1e400``).

Malformed JSON is left to the view's parser, which answers 400 naming the position.

Most bodies hold none of this, and a look at their bytes shows it (:func:`_plain`): such a body
is not parsed here at all, which spares every POST, PUT and PATCH a second parse and a walk.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Request

from app.errors import VALIDATION_ERROR_TYPE
from powerstrip.db import storable
from powerstrip.http import current_request
from powerstrip.problems import Problem

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_DEPTH = 64  # arrays and objects inside each other; no documented body comes close
INT64_DIGITS = 19  # 2**63 - 1 has 19 digits: a longer literal (without its sign) is too large
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

BAD_STRING = "Contains NUL or a lone surrogate, which cannot be stored; remove it."
OUT_OF_RANGE = "Out of range: at most a signed 64-bit integer."
NOT_FINITE = "Out of range: beyond a double-precision number."
BAD_MEMBER_NAME = "A member name contains NUL or a lone surrogate."
INVALID_FIELDS = "The request did not pass validation; see errors."
DEEP = f"The JSON body is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects."


# A byte no body _plain lets through could be part of what the guard refuses: anything but
# printable ASCII and JSON's whitespace (a NUL or a lone surrogate needs a backslash escape
# or non-ASCII bytes), a run of 19 digits (an integer beyond 64 bits, or a number beyond a
# double written out), a digit before an exponent (1e400), NaN and Infinity.
_MAYBE_REFUSED = re.compile(rb"[^\t\n\r\x20-\x5b\x5d-\x7e]|[0-9]{19}|[0-9][eE]|NaN|Infinity")


def _plain(data: bytes) -> bool:
    """Whether ``data`` surely holds nothing :func:`body_errors` refuses, read off its bytes:
    none :data:`_MAYBE_REFUSED` finds, and fewer brackets than :data:`MAX_DEPTH` levels of
    nesting need. A body that fails this is parsed and walked, so a false alarm (an ``e``
    after a digit in a string, a pretty-printed body's indentation) only costs that."""
    return data.count(b"[") + data.count(b"{") < MAX_DEPTH and _MAYBE_REFUSED.search(data) is None


class _TooLarge:
    """An integer literal with more digits than any column holds (never converted)."""


TOO_LARGE = _TooLarge()


class _NotJsonError(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's parser accepts them, JSON does not."""


def _parse_int(literal: str) -> int | _TooLarge:
    if len(literal.lstrip("-")) > INT64_DIGITS:
        return TOO_LARGE
    return int(literal)


def _parse_constant(name: str) -> Any:
    raise _NotJsonError(name)


def parse_json(data: bytes) -> Any:
    """The JSON document in ``data``; integers too long for 64 bits come back as TOO_LARGE.

    Raises ``ValueError`` for malformed JSON (and ``RecursionError`` for absurd nesting).
    """
    return json.loads(data, parse_int=_parse_int, parse_constant=_parse_constant)


def _value_problem(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return BAD_STRING if not storable(value) else None
    if kind is int:
        return None if INT64_MIN <= value <= INT64_MAX else OUT_OF_RANGE
    if kind is _TooLarge:
        return OUT_OF_RANGE
    if kind is float:
        return None if math.isfinite(value) else NOT_FINITE
    return None


def body_errors(document: Any) -> Iterator[tuple[str, str]]:
    """(dotted field path, message) for every value of ``document`` no column can hold.

    Iterative, so a document as deep as the parser allowed cannot exhaust the stack; raises
    :class:`Problem` 400 past :data:`MAX_DEPTH`.
    """
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise Problem(400, DEEP)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            children = []
            for key, child in items:
                if isinstance(key, str) and not storable(key):
                    yield path or "_schema", BAD_MEMBER_NAME
                    continue
                children.append((f"{path}.{key}" if path else str(key), child, depth + 1))
            stack.extend(reversed(children))
            continue
        message = _value_problem(value)
        if message is not None:
            yield path or "_schema", message


def _refuse(pairs: Iterator[tuple[str, str]]) -> None:
    """Raise a 422 listing each field's messages, if there are any (the host caps the list)."""
    errors: dict[str, list[str]] = {}
    for field, message in pairs:
        errors.setdefault(field, []).append(message)
    if errors:
        raise Problem(
            422,
            INVALID_FIELDS,
            type=VALIDATION_ERROR_TYPE,
            title="Validation failed",
            errors=errors,
        )


def _utf8(raw: str) -> bool:
    """Whether a WSGI string (bytes as latin-1) is UTF-8."""
    try:
        raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def _check_path(handled: Request) -> None:
    raw = handled.environ.get("PATH_INFO", "")
    if not raw.isascii() and not _utf8(raw):
        raise Problem(400, "The request path is not valid UTF-8.")
    if "\x00" in raw:
        raise Problem(404, "No resource exists at this path.")


def _check_query(handled: Request) -> None:
    raw = handled.environ.get("QUERY_STRING", "")
    if not raw:
        return
    if not raw.isascii() or "%" in raw:
        try:
            decoded = unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
        except UnicodeError:
            raise Problem(400, "The query string is not valid UTF-8.") from None
        if "\x00" not in decoded:
            return
        _refuse(
            (f"query.{name}", BAD_STRING)
            for name, value in handled.args.items(multi=True)
            if "\x00" in name or "\x00" in value
        )


def _check_body(handled: Request) -> None:
    if handled.method not in BODY_METHODS:
        return
    length = handled.content_length
    chunked = "chunked" in handled.headers.get("Transfer-Encoding", "").lower()
    if not length and not chunked:
        return
    maximum = handled.max_content_length
    if maximum is not None:  # werkzeug's read of the body asks again: the app's config, kept
        handled.max_content_length = maximum
    if length and maximum is not None and length > maximum:
        raise Problem(413, f"The request body exceeds the limit of {maximum} bytes.")
    if not handled.is_json:
        raise Problem(
            415,
            "This API accepts only JSON bodies: send Content-Type: application/json.",
            headers={"Accept": "application/json"},
        )
    data = handled.get_data(cache=True)
    if (
        length is None
        and maximum is not None
        and len(data) >= maximum
        and handled.environ["wsgi.input"].read(1)  # werkzeug stopped at the limit; more came
    ):
        raise Problem(413, f"The request body exceeds the limit of {maximum} bytes.")
    if _plain(data):
        return  # nothing in it to refuse here; malformed JSON is the view's parser's to answer
    try:
        document = parse_json(data)
    except RecursionError:  # the parser's stack gives out before the body does: never a 500
        raise Problem(400, DEEP) from None
    except _NotJsonError as error:
        raise Problem(
            400, f"The request body is not valid JSON: {error} is not a number."
        ) from None
    except ValueError:
        return  # malformed JSON: the view's parser answers it (a 400 naming the position)
    _refuse(body_errors(document))


def check_input() -> None:
    """Refuse a request whose path, query string or body no view should see."""
    handled = current_request()
    _check_path(handled)
    _check_query(handled)
    _check_body(handled)
