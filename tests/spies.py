"""A spy for tests: record the calls a function gets, and still make them."""

from __future__ import annotations

from typing import Any

import pytest


def record_calls(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str
) -> list[tuple[Any, ...]]:
    """Replace ``owner.name`` (a module's function, a class's method, an object's bound
    method) with one that records each call's arguments, then calls the original.

    Returns the calls, in order, each as its positional arguments followed by its keyword
    arguments' values in the order given (a method of a class records ``self`` first).
    ``monkeypatch`` undoes the replacement.
    """
    original = getattr(owner, name)
    calls: list[tuple[Any, ...]] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append((*args, *kwargs.values()))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls
