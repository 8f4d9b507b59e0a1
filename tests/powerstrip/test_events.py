"""The domain event bus: typed delivery, after-commit semantics, failing subscribers."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import create_app
from powerstrip import EventBus
from tests.plugin_fixtures import HELLO_VIEW, Installer, plugin_source


@dataclass(frozen=True)
class TaskEvent:
    task_id: int


@dataclass(frozen=True)
class TaskClosed(TaskEvent):
    pass


@dataclass(frozen=True)
class Unrelated:
    pass


def collect(bus: EventBus, event_type: type[object]) -> list[object]:
    received: list[object] = []
    bus.subscribe(event_type, received.append)
    return received


def test_outside_a_unit_of_work_events_are_delivered_at_once() -> None:
    bus = EventBus()
    received = collect(bus, TaskEvent)
    bus.publish(TaskEvent(1))
    assert received == [TaskEvent(1)]


def test_subscribers_of_a_base_class_receive_subclasses_only_once() -> None:
    bus = EventBus()
    base = collect(bus, TaskEvent)
    closed = collect(bus, TaskClosed)
    bus.publish(TaskClosed(2))
    bus.publish(Unrelated())
    assert base == [TaskClosed(2)]
    assert closed == [TaskClosed(2)]


def test_deferred_events_wait_for_the_block_to_end() -> None:
    bus = EventBus()
    received = collect(bus, TaskEvent)
    with bus.deferred():
        bus.publish(TaskEvent(1))
        bus.publish(TaskEvent(2))
        assert received == []
    assert received == [TaskEvent(1), TaskEvent(2)]


def test_events_of_rolled_back_work_are_never_delivered() -> None:
    bus = EventBus()
    received = collect(bus, TaskEvent)

    def work_that_rolls_back() -> None:
        with bus.deferred():
            bus.publish(TaskEvent(1))
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        work_that_rolls_back()
    assert received == []
    bus.publish(TaskEvent(2))  # the bus is usable afterwards, outside any block
    assert received == [TaskEvent(2)]


def test_nested_blocks_hand_events_to_the_outer_block() -> None:
    bus = EventBus()
    received = collect(bus, TaskEvent)
    seen_after_inner: list[object] = []

    def outer_rolls_back() -> None:
        with bus.deferred():
            with bus.deferred():
                bus.publish(TaskEvent(1))
            seen_after_inner.extend(received)
            raise RuntimeError("outer rolls back")

    with pytest.raises(RuntimeError):
        outer_rolls_back()
    assert seen_after_inner == []
    assert received == []


def test_a_failing_subscriber_does_not_starve_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()

    def broken(event: TaskEvent) -> None:
        raise ValueError("subscriber bug")

    bus.subscribe(TaskEvent, broken)
    received = collect(bus, TaskEvent)
    with caplog.at_level(logging.ERROR, logger="powerstrip.events"):
        bus.publish(TaskEvent(1))
    assert received == [TaskEvent(1)]
    [record] = caplog.records
    assert record.exc_info is not None
    assert record.event == "TaskEvent"  # type: ignore[attr-defined]


def test_in_transaction_subscribers_hear_of_it_as_it_is_published() -> None:
    bus = EventBus()
    heard: list[str] = []
    bus.subscribe(TaskEvent, lambda event: heard.append(f"after {event.task_id}"))
    bus.subscribe(TaskEvent, lambda event: heard.append(f"in {event.task_id}"), in_transaction=True)
    bus.subscribe(Unrelated, lambda _: heard.append("unrelated"), in_transaction=True)
    with bus.deferred():
        bus.publish(TaskClosed(1))  # a subclass: heard by the base class's subscribers
        assert heard == ["in 1"]
    assert heard == ["in 1", "after 1"]
    bus.publish(TaskEvent(2))  # outside a unit of work: both at once, in-transaction first
    assert heard == ["in 1", "after 1", "in 2", "after 2"]


def test_an_in_transaction_subscriber_that_fails_fails_the_change() -> None:
    bus = EventBus()
    after = collect(bus, TaskEvent)

    def refuse(_event: TaskEvent) -> None:
        raise RuntimeError("cannot record it")

    bus.subscribe(TaskEvent, refuse, in_transaction=True)
    with pytest.raises(RuntimeError, match="cannot record it"), bus.deferred():
        bus.publish(TaskEvent(1))
    assert after == []  # the change rolled back: nobody hears of it after


def test_buffers_are_per_thread() -> None:
    bus = EventBus()
    received = collect(bus, TaskEvent)
    inside = threading.Event()
    release = threading.Event()

    def other_thread() -> None:
        bus.publish(TaskEvent(99))  # not inside this thread's deferred block
        inside.set()
        release.wait(5)

    with bus.deferred():
        thread = threading.Thread(target=other_thread)
        thread.start()
        assert inside.wait(5)
        assert received == [TaskEvent(99)]
        bus.publish(TaskEvent(1))
        release.set()
        thread.join(5)
    assert received == [TaskEvent(99), TaskEvent(1)]


EVENTS_PLUGIN = (
    HELLO_VIEW.replace("def hello():", "def hello_unused():").replace(
        '@blp.route("/hello")', '@blp.route("/unused")'
    )
    + """
from dataclasses import dataclass
from powerstrip import EventBus

@dataclass(frozen=True)
class Greeted:
    who: str

heard = []

@blp.route("/greet/<who>")
@blp.response(200)
def greet(who: str, events: EventBus):
    events.publish(Greeted(who))
    return {{"heard": [event.who for event in heard]}}

def setup(context):
    context.events.subscribe(Greeted, heard.append)
"""
)


def test_plugins_subscribe_in_setup_and_publish_through_injection(
    installer: Installer, instance_path: Path
) -> None:
    installer.install("greeter", plugin_source("greeter", EVENTS_PLUGIN, setup="setup"))
    app = create_app({"ENVIRONMENT": "testing", "INSTANCE_PATH": str(instance_path)})
    client = app.test_client()
    assert client.get("/api/v1/greeter/greet/ada").get_json() == {"heard": ["ada"]}
    assert client.get("/api/v1/greeter/greet/bob").get_json() == {"heard": ["ada", "bob"]}
