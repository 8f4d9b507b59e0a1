"""The host side of the SDK's ``@idempotent``: claim, replay and store in the host's own table.

For a request to an operation marked ``@idempotent`` that carries ``Idempotency-Key`` and
credentials the host authenticated (keys are scoped to the caller's subject and the operation's
endpoint), a ``before_request`` hook, after authentication and the rate limiter:

1. claims the key with an INSERT in a short transaction of its own, committed at once (never
   the request's session, so a claim is visible to every other worker before the view runs);
2. checks the operation's ``@requires`` scopes, so a stored answer goes only to a caller the
   view would admit (domain checks, such as project membership, are not re-run: a replay
   repeats what that caller was already told);
3. if the key exists already: an expired one (completed, or abandoned) is deleted and claimed
   again; one used with
   another request (its fingerprint: method, path with query, and the body, as canonical JSON
   when it is JSON) answers a 422 problem; a completed one replays its stored answer with
   ``Idempotent-Replayed: true``; a running one answers a 409 problem with ``Retry-After``,
   unless it was claimed longer than ``IDEMPOTENCY_LOCK_TIMEOUT`` ago (its worker died): then
   one conditional UPDATE takes it over, so only one retry wins.

An ``after_request`` hook then stores a 2xx answer (status, body, ``Location``, ``ETag`` and
``Content-Type``) and marks the key completed; any other answer deletes the claim, so the key
is free for a retry. A request that raises past the error handlers releases its claim at
teardown; a worker killed outright (SIGKILL, the server's timeout) runs no teardown, and its
claim waits for the lock timeout. Both writes are conditional on the claim still being this
request's (``locked_at``), so a request whose key was taken over stores nothing.

The crash window: the plugin's unit of work commits the operation's own writes before the view
returns, and the answer is stored afterwards, in another transaction. If the process dies (or
the database refuses the write) in between, the work is done but the key stays claimed with
no answer: retries get 409 until the lock timeout passes, then one retry takes the key over
and runs the operation again. Likewise an operation running longer than the lock timeout can
be taken over while it still runs. So set ``IDEMPOTENCY_LOCK_TIMEOUT`` above the slowest
idempotent operation and above the server's worker timeout. Delivery is therefore
at-most-once while the process lives and at-least-once across a crash in that window.

Expired keys are deleted when reused or by ``flask idempotency purge``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from flask import Flask, Request, Response, request
from sqlalchemy import (
    JSON,
    ColumnElement,
    CursorResult,
    Integer,
    LargeBinary,
    String,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Database
from app.errors import VALIDATION_ERROR_TYPE
from powerstrip.auth import request_principal
from powerstrip.contracts import Clock
from powerstrip.db import Model, UtcDateTime
from powerstrip.http import (
    ETAG_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENT_REPLAYED_HEADER,
    REQUIRES,
    current_request,
    environ_key,
    marks,
)
from powerstrip.idempotency import MAX_KEY_LENGTH, is_idempotent
from powerstrip.problems import Problem

IDEMPOTENCY = "powerstrip.idempotency"
STORED_HEADERS = ("Location", ETAG_HEADER, "Content-Type")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_PATTERN = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
MAX_CALLER_LENGTH = 255
CLAIM_ATTEMPTS = 5  # each failed attempt means another request claimed or released the key
RETRY_AFTER_SECONDS = 1
_CLAIM = "powerstrip.idempotency.claim"  # the WSGI environ key of the request's claim

log = logging.getLogger(__name__)


class IdempotencyKey(Model):
    """One caller's key for one operation: claimed (running), then completed with its answer."""

    __tablename__ = "host_idempotency_keys"

    caller: Mapped[str] = mapped_column(String(MAX_CALLER_LENGTH), primary_key=True)
    operation: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    completed: Mapped[bool]
    status: Mapped[int | None] = mapped_column(Integer)  # an HTTP status
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    locked_at: Mapped[datetime] = mapped_column(UtcDateTime())


@dataclass(frozen=True, slots=True)
class Scope:
    """What a key is unique within: the caller and the operation (endpoint)."""

    caller: str
    operation: str
    key: str

    def where(self) -> ColumnElement[bool]:
        """The SQL condition selecting this key's row."""
        return and_(
            IdempotencyKey.caller == self.caller,
            IdempotencyKey.operation == self.operation,
            IdempotencyKey.key == self.key,
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A key this request holds: ``locked_at`` tells it from a later taker's claim."""

    scope: Scope
    locked_at: datetime


@dataclass(frozen=True, slots=True)
class Answer:
    """A stored answer: what a replay sends back."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, response: Response) -> Answer:
        """The parts of ``response`` a replay repeats."""
        kept = {name: response.headers[name] for name in STORED_HEADERS if name in response.headers}
        return cls(response.status_code, response.get_data(), kept)

    def response(self) -> Response:
        """The replayed response, marked ``Idempotent-Replayed: true``."""
        replay = Response(self.body, status=self.status)
        del replay.headers["Content-Type"]  # the stored one, or none
        replay.headers.extend(self.headers)
        replay.headers[IDEMPOTENT_REPLAYED_HEADER] = "true"
        return replay


class KeyStore:
    """The host table's reads and writes, each in a short transaction of its own."""

    def __init__(
        self, database: Database, clock: Clock, *, ttl: timedelta, lock_timeout: timedelta
    ) -> None:
        self._database = database
        self._clock = clock
        self._ttl = ttl
        self._lock_timeout = lock_timeout

    def claim(self, scope: Scope, fingerprint: str) -> Claim | Answer:
        """Claim ``scope``'s key for this request, or the stored answer to replay.

        Raises a 422 problem if the key was used with another request, a 409 problem if the
        request that holds it is still running.
        """
        for _ in range(CLAIM_ATTEMPTS):
            now = self._clock.now()
            if self._insert(scope, fingerprint, now):
                return Claim(scope, now)
            row = self._read(scope)
            if row is None:  # released meanwhile: claim again
                continue
            if row.expires_at <= now and (
                row.completed or row.locked_at <= now - self._lock_timeout
            ):
                self._run(delete(IdempotencyKey).where(scope.where(), self._forgettable(now)))
                continue
            if row.fingerprint != fingerprint:
                raise Problem(
                    422,
                    "This Idempotency-Key was used with another request.",
                    errors={IDEMPOTENCY_KEY_HEADER: ["Already used with another request."]},
                )
            if row.completed:
                return Answer(row.status or 200, row.body or b"", row.headers or {})
            if row.locked_at > now - self._lock_timeout:
                break
            taken = update(IdempotencyKey).where(
                scope.where(),
                IdempotencyKey.completed.is_(False),
                IdempotencyKey.locked_at <= now - self._lock_timeout,
            )
            if self._run(taken.values(locked_at=now, expires_at=now + self._ttl)):
                return Claim(scope, now)
        raise Problem(
            409,
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    def complete(self, claim: Claim, answer: Answer) -> bool:
        """Store ``answer`` for the claimed key; False if the claim was taken over."""
        stored = self._mine(update(IdempotencyKey), claim).values(
            completed=True, status=answer.status, headers=dict(answer.headers), body=answer.body
        )
        return self._run(stored)

    def release(self, claim: Claim) -> bool:
        """Delete the claimed key (free for a retry); False if the claim was taken over."""
        return self._run(self._mine(delete(IdempotencyKey), claim))

    def purge(self) -> int:
        """Delete every expired key no running request holds; return how many."""
        expired = delete(IdempotencyKey).where(self._forgettable(self._clock.now()))
        with self._database.sessions() as session, session.begin():
            return cast(CursorResult[Any], session.execute(expired)).rowcount

    def _forgettable(self, now: datetime) -> ColumnElement[bool]:
        """Expired, and completed or abandoned (a running request keeps its key)."""
        return and_(
            IdempotencyKey.expires_at <= now,
            or_(
                IdempotencyKey.completed.is_(True),
                IdempotencyKey.locked_at <= now - self._lock_timeout,
            ),
        )

    @staticmethod
    def _mine(statement: Any, claim: Claim) -> Any:
        return statement.where(
            claim.scope.where(),
            IdempotencyKey.completed.is_(False),
            IdempotencyKey.locked_at == claim.locked_at,
        )

    def _insert(self, scope: Scope, fingerprint: str, now: datetime) -> bool:
        claimed = insert(IdempotencyKey).values(
            caller=scope.caller,
            operation=scope.operation,
            key=scope.key,
            fingerprint=fingerprint,
            completed=False,
            created_at=now,
            expires_at=now + self._ttl,
            locked_at=now,
        )
        try:
            with self._database.sessions() as session, session.begin():
                session.execute(claimed)
        except IntegrityError:
            return False
        return True

    def _read(self, scope: Scope) -> IdempotencyKey | None:
        with self._database.sessions() as session:
            return session.scalars(select(IdempotencyKey).where(scope.where())).one_or_none()

    def _run(self, statement: Any) -> bool:
        """Run a conditional write; whether it changed a row."""
        with self._database.sessions() as session, session.begin():
            return cast(CursorResult[Any], session.execute(statement)).rowcount > 0


def fingerprint(sent: Request) -> str:
    """The request a key was used with: method, path and query, body (canonical JSON if JSON)."""
    body = sent.get_data(cache=True)
    if sent.is_json:
        with suppress(ValueError, RecursionError):  # not JSON after all: the bytes as sent
            body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    query = urlencode(sorted(sent.args.items(multi=True)))  # the order of parameters is noise
    digest = hashlib.sha256(f"{sent.method} {sent.path}?{query}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def idempotent_operations(app: Flask) -> dict[tuple[str, str], tuple[str, ...]]:
    """(endpoint, method) of every operation marked ``@idempotent`` -> the scopes it requires.

    Safe methods never are. A function view's mark covers its methods; a class-based view's,
    the one method it marks.
    """
    methods: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        methods.setdefault(rule.endpoint, set()).update(rule.methods or ())
    operations: dict[tuple[str, str], tuple[str, ...]] = {}
    for endpoint, view in app.view_functions.items():
        for method in methods.get(endpoint, set()) - SAFE_METHODS:
            handler = getattr(getattr(view, "view_class", None), method.lower(), view)
            if is_idempotent(handler):
                operations[endpoint, method] = tuple(marks(handler).get(REQUIRES, ()))
    return operations


def _key_problem() -> Problem:
    return Problem(
        422,
        "The Idempotency-Key header is not valid.",
        type=VALIDATION_ERROR_TYPE,
        title="Validation failed",
        errors={IDEMPOTENCY_KEY_HEADER: [f"Use 1 to {MAX_KEY_LENGTH} printable ASCII characters."]},
    )


def caller_key(subject: str) -> str:
    """The caller column's value: the subject, or its digest when too long for the column."""
    if len(subject) <= MAX_CALLER_LENGTH:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode()).hexdigest()


_KEY_ENVIRON = environ_key(IDEMPOTENCY_KEY_HEADER)


def init_app(
    app: Flask, database: Database, clock: Clock, *, ttl: timedelta, lock_timeout: timedelta
) -> None:
    """Run ``@idempotent`` operations once per key; call after the authentication hook.

    Register every route first: the marked operations are found once, here.
    """
    operations = idempotent_operations(app)
    store = KeyStore(database, clock, ttl=ttl, lock_timeout=lock_timeout)
    app.extensions[IDEMPOTENCY] = store

    def claim_key() -> Response | None:
        key: str | None = current_request().environ.get(_KEY_ENVIRON)  # request.headers' value
        if key is None:  # most requests: nothing more to look up
            return None
        caller = request_principal().caller
        operation = (str(request.endpoint), request.method)
        if caller is None or operation not in operations:
            return None  # not deduplicated: no caller to scope the key to, or not marked
        if len(key) > 1 and key[0] == key[-1] == '"':
            key = key[1:-1]  # the draft's Structured Field string form: "abc" is abc
        if not KEY_PATTERN.fullmatch(key):
            raise _key_problem()
        # A stored answer goes only to a caller the operation would still let in (its
        # @requires scopes: a key revoked to fewer scopes gets the view's 403, not a replay).
        request_principal().require(*operations[operation])
        scope = Scope(caller_key(caller.subject), str(request.endpoint), key)
        claimed = store.claim(scope, fingerprint(request))
        if isinstance(claimed, Answer):
            return claimed.response()
        request.environ[_CLAIM] = claimed
        return None

    def settle(response: Response | None) -> None:
        """Store a 2xx answer, or release the claim; log (never raise) if that fails."""
        claim: Claim | None = current_request().environ.pop(_CLAIM, None)
        if claim is None:
            return
        try:
            if response is not None and 200 <= response.status_code < 300:
                kept = store.complete(claim, Answer.of(response))
            else:
                kept = store.release(claim)
        except SQLAlchemyError:
            # The answer still goes out; the key stays claimed until the lock timeout.
            log.exception("idempotency key not settled", extra={"operation": claim.scope.operation})
            return
        if not kept:
            log.warning(
                "idempotency key was taken over; this answer is not stored",
                extra={"operation": claim.scope.operation},
            )

    def store_answer(response: Response) -> Response:
        settle(response)
        return response

    def release_at_teardown(_exc: BaseException | None) -> None:
        settle(None)  # only a request that never reached store_answer still holds a claim

    app.before_request(claim_key)
    app.after_request(store_answer)
    app.teardown_request(release_at_teardown)
