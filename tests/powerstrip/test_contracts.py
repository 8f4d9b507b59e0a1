"""Host contracts bound for every plugin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from powerstrip import Clock


def test_clock_is_aware_utc_now() -> None:
    before = datetime.now(UTC)
    now = Clock().now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC) + timedelta(seconds=1)
