"""``Problem``: the exception a plugin raises to answer with an RFC 9457 problem document.

The host turns it (and every other error) into ``application/problem+json`` with the request
id; plugins never build error responses themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus

from werkzeug.exceptions import HTTPException

Errors = Mapping[str, Sequence[str]]


class Problem(HTTPException):
    """An HTTP error a service raises to answer with a specific problem document.

    :param status: the HTTP status code
    :param detail: a human-readable explanation of this occurrence
    :param type: a URI identifying the problem type (``about:blank`` by default)
    :param title: a short summary of the problem type (the status phrase by default)
    :param errors: field -> messages, for validation problems
    :param headers: extra response headers (``Retry-After``, ``WWW-Authenticate`` ...)
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        type: str = "about:blank",  # noqa: A002 - the RFC 9457 member name
        title: str | None = None,
        errors: Errors | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description=detail)
        self.code = status
        self.type = type
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.extra_headers = dict(headers or {})

    def summary(self) -> str:
        """One line for a terminal: the detail and every field's messages."""
        details = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in (self.errors or {}).items()
        )
        return f"{self.description or self.title} {details}".strip()
