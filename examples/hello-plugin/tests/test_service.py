"""The greeting service: its clock replaced by a fake, its event delivered after the commit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import injector
import pytest
from flask import Flask
from flask.testing import FlaskClient
from powerstrip import Clock
from powerstrip.testing import EventRecorder, metric

from powerstrip_hello.service import Greeted

NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FixedClock(Clock):
    """Always noon on 1 January 2030."""

    def now(self) -> datetime:
        return NOON


def fixed_clock(binder: injector.Binder) -> None:
    binder.bind(Clock, to=FixedClock())


@pytest.fixture
def powerstrip_modules() -> list[Callable[[injector.Binder], None]]:
    return [fixed_clock]


def test_greetings_take_the_time_from_the_clock(powerstrip_client: FlaskClient) -> None:
    greeting = powerstrip_client.get("/api/v1/hello/greetings/Ada").get_json()
    assert greeting["at"] == "2030-01-01T12:00:00+00:00"
    stored = powerstrip_client.post("/api/v1/hello/greetings", json={"name": "Bob"}).get_json()
    assert stored["created_at"] == "2030-01-01T12:00:00+00:00"


def test_storing_a_greeting_publishes_greeted(
    powerstrip_client: FlaskClient, powerstrip_events: EventRecorder
) -> None:
    stored = powerstrip_client.post("/api/v1/hello/greetings", json={"name": " Bob "}).get_json()
    assert powerstrip_events.of(Greeted) == [Greeted(greeting_id=stored["id"], name="Bob")]
    assert powerstrip_events.published == powerstrip_events.delivered


def test_a_refused_greeting_publishes_nothing(
    powerstrip_client: FlaskClient, powerstrip_events: EventRecorder
) -> None:
    assert powerstrip_client.post("/api/v1/hello/greetings", json={"name": ""}).status_code == 422
    assert powerstrip_events.published == powerstrip_events.delivered == []


def test_stored_greetings_are_counted(
    powerstrip_app: Flask, powerstrip_client: FlaskClient
) -> None:
    assert metric(powerstrip_app, "hello_greetings_stored_total") == 0
    powerstrip_client.post("/api/v1/hello/greetings", json={"name": "Bob"})
    powerstrip_client.post("/api/v1/hello/greetings", json={"name": ""})  # refused: not stored
    assert metric(powerstrip_app, "hello_greetings_stored_total") == 1
