"""The app's JSON provider: answers written by orjson, everything else as Flask's default.

orjson writes an answer several times faster than :mod:`json`. What it writes differs only in
form: non-ASCII characters as UTF-8 rather than ``\\u`` escapes (both valid JSON, the body is
UTF-8) and a NaN or infinity as ``null`` (:mod:`json` writes ``NaN``, which is not JSON). Dates,
times and dataclasses go through Flask's ``default`` as before (RFC 822 dates, ``asdict``).
A value orjson refuses (an integer beyond 64 bits, a dict with keys that are not strings) is
written by Flask's provider instead, so nothing that answered before fails now.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response

# Flask's ``default`` for dates, times and dataclasses, as its provider does; a newline at the
# end, as Flask's answers have.
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE
)


class JSONProvider(DefaultJSONProvider):
    """Keys in the order they were written (problem members, the OpenAPI document)."""

    sort_keys = False

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """Flask's ``jsonify``: compact answers by orjson; indented ones (debug) as Flask's."""
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        value = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(value, default=self.default, option=_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: beyond what orjson writes
            return super().response(*args, **kwargs)
        # A Flask app's response class takes the body (the sansio annotation: a status).
        return self._app.response_class(body, mimetype=self.mimetype)  # type: ignore[arg-type]
