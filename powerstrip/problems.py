"""``Problem``: the exception a plugin raises to answer with an RFC 9457 problem document.

The host turns it (and every other error) into ``application/problem+json`` with the request
id; plugins never build error responses themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException

Errors = Mapping[str, Sequence[str]]
F = TypeVar("F", bound=Callable[..., Any])


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


def problem_responses(*statuses: int) -> Callable[[F], F]:
    """Document the problems an operation can answer with: ``@problem_responses(404, 412)``.

    Each refers to the host's shared response of that status (an RFC 9457 problem document).
    ``requires`` documents 401/403 itself, ``@blp.arguments`` 422, the host 429 everywhere.
    """
    responses = {str(status): HTTPStatus(status).name for status in statuses}
    decorate: Callable[[F], F] = Blueprint.doc(responses=responses)
    return decorate
