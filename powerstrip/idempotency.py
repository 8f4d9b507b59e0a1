"""``@idempotent``: a POST a client may repeat safely with an ``Idempotency-Key`` header.

The decorator only marks the operation; the host runs the mechanism (in its own
table, outside the plugin's transaction), so a plugin's services never see keys, stored
answers or status codes (the tasks plugin's ``create_task``)::

    @blueprint.route("/projects/<int:project_id>/tasks", methods=["POST"])
    @blueprint.arguments(TaskInSchema())
    @blueprint.response(201, TaskSchema)
    @requires(USE)
    @idempotent
    @conditional
    def create_task(body, project_id: int, tasks: TaskService, principal: Principal):
        created = tasks.create(principal, project_id, body)
        return created, {"Location": url_for("tasks.task", project_id=project_id,
                                             task_id=created.id)}

For an authenticated request carrying ``Idempotency-Key`` (1 to 255 printable ASCII
characters), keyed by the caller, the operation and the key (the IETF
``draft-ietf-httpapi-idempotency-key-header``):

- the first request runs; a success (2xx) is stored: its status, body and its ``Location``,
  ``ETag`` and ``Content-Type`` headers;
- a repeat with the same request (method, path with its query, and body) replays the stored
  answer with ``Idempotent-Replayed: true``;
- a repeat with another request answers a 422 problem;
- a repeat while the first is still running answers a 409 problem with ``Retry-After``;
- an answer that is not a success is not stored: the key is free for a retry.

Keys expire after the host's ``IDEMPOTENCY_KEY_TTL`` seconds; ``flask idempotency purge``
deletes expired ones. Requests without credentials are not deduplicated (they share no
caller to scope the key to).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from powerstrip.http import mark, marks

F = TypeVar("F", bound=Callable[..., Any])

IDEMPOTENT = "idempotent"
MAX_KEY_LENGTH = 255


def idempotent(view: F) -> F:
    """Mark a POST operation as safe to repeat with an ``Idempotency-Key`` (see module doc).

    Put it below ``@blueprint.route`` and the flask-smorest decorators. The host documents the
    header, the 409 and 422 problems and the ``Idempotent-Replayed`` response header.
    """
    mark(view, IDEMPOTENT, True)
    return view


def is_idempotent(view: Callable[..., Any]) -> bool:
    """Whether ``view`` (or a function it wraps) was marked ``@idempotent``."""
    return bool(marks(view).get(IDEMPOTENT, False))
