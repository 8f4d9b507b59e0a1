"""Idempotent creates: the first answer to a POST with an Idempotency-Key is replayed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from injector import inject

from plugins.tasks.models import IdempotencyKey
from plugins.tasks.repository import TasksRepository
from plugins.tasks.settings import TasksSettings
from powerstrip import Caller, Clock, Problem


def request_hash(body: dict[str, Any]) -> str:
    """A stable digest of a validated request body (for Idempotency-Key)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: the status and the serialized body (first or replayed)."""

    status: int
    body: dict[str, Any]
    replayed: bool


class Idempotency:
    """Replays the first answer to a POST repeated with the same Idempotency-Key."""

    @inject
    def __init__(self, repository: TasksRepository, clock: Clock, settings: TasksSettings) -> None:
        self._repository = repository
        self._clock = clock
        self._settings = settings

    def replay(self, caller: Caller, key: str | None, body: dict[str, Any]) -> Created | None:
        """The stored answer for ``key``; 422 if the key came with another body."""
        if key is None:
            return None
        stored = self._repository.idempotency_key(caller.subject, key)
        if stored is None:
            return None
        expires = stored.created_at + timedelta(hours=self._settings.IDEMPOTENCY_KEY_HOURS)
        if expires <= self._clock.now():
            self._repository.delete(stored)
            return None
        if stored.request_hash != request_hash(body):
            raise Problem(
                422,
                "This Idempotency-Key was used with another request body.",
                errors={"Idempotency-Key": ["Reused with a different body."]},
            )
        return Created(stored.status, stored.body, replayed=True)

    def remember(
        self,
        caller: Caller,
        key: str | None,
        body: dict[str, Any],
        status: int,
        answer: dict[str, Any],
    ) -> Created:
        """Store the first answer for ``key`` (in the same transaction as the create)."""
        if key is not None:
            self._repository.add(
                IdempotencyKey(
                    principal=caller.subject,
                    key=key,
                    request_hash=request_hash(body),
                    status=status,
                    body=answer,
                    created_at=self._clock.now(),
                )
            )
        return Created(status, answer, replayed=False)
