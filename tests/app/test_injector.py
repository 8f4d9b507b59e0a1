"""The host's Injector: injector's call_with_injection, with each callable reflected once."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from typing import Any

import injector
import pytest

from app.composition import Injector
from tests.spies import record_calls


class Clock:
    def now(self) -> str:
        return "now"


class Service:
    @injector.inject
    def __init__(self, clock: Clock, label: str) -> None:
        self.clock = clock
        self.label = label


@injector.inject
def view(item_id: int, clock: Clock, *, extra: injector.NoInject[str] = "") -> str:
    return f"{item_id}:{clock.now()}{extra}"


def build() -> Injector:
    def configure(binder: injector.Binder) -> None:
        binder.bind(str, to="configured")

    return Injector([configure], auto_bind=True)


def test_injects_what_is_not_passed_and_reflects_each_callable_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reflected = record_calls(monkeypatch, inspect, "signature")
    inj = build()
    for _ in range(3):
        assert inj.call_with_injection(view, kwargs={"item_id": 7}) == "7:now"
        assert inj.call_with_injection(view, args=(8,)) == "8:now"  # positional: not injected
        assert inj.call_with_injection(view, args=(9,), kwargs={"extra": "!"}) == "9:now!"
        built = inj.get(Service)
        assert (type(built.clock), built.label) == (Clock, "configured")
    passed = inj.call_with_injection(Service.__init__, self_=built, kwargs={"label": "given"})
    assert passed is None
    assert built.label == "given"  # a passed keyword wins over the binding
    assert reflected.count((view,)) == 1
    assert reflected.count((Service.__init__,)) == 1


def test_a_call_that_does_not_fit_is_injectors_call_error() -> None:
    with pytest.raises(injector.CallError, match="view"):
        build().call_with_injection(view, kwargs={"item_id": 1, "unknown": 2})


def test_too_many_positional_arguments_are_refused_as_injector_refuses_them() -> None:
    with pytest.raises(TypeError, match="too many positional arguments"):
        build().call_with_injection(view, args=(1, Clock(), "x"))


class PerCall:
    pass


@injector.singleton
class Shared:
    @injector.inject
    def __init__(self, per_call: PerCall) -> None:
        self.per_call = per_call


def test_a_sealed_injector_looks_bindings_up_once_and_keeps_scopes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inj = build()
    inj.get(Clock)  # before sealing: injector's own get
    inj.seal()
    looked_up = record_calls(monkeypatch, inj.binder, "get_binding")
    first, second = inj.get(PerCall), inj.get(PerCall)
    assert first is not second  # unscoped: a new one each time
    assert inj.get(Shared) is inj.get(Shared)  # singleton: one
    assert inj.get(str) == "configured"
    assert inj.get(str, scope=injector.singleton) == "configured"  # a scope asked: injector's
    assert looked_up.count((PerCall,)) == 1
    assert looked_up.count((Shared,)) == 1
    assert looked_up.count((str,)) == 2  # once sealed, once for the call that names a scope


def test_a_sealed_injector_keeps_what_never_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A singleton once built, an instance bound as such: no scope asked again (injector's
    singleton scope answers under its process-wide lock)."""
    inj = build()
    inj.seal()
    singleton_scope = inj.get(injector.SingletonScope)
    asked = record_calls(monkeypatch, singleton_scope, "get")
    shared = inj.get(Shared)
    assert [inj.get(Shared) for _ in range(3)] == [shared] * 3
    assert len(asked) == 1  # built once, under its lock; then kept
    assert inj.get(str) == "configured"  # bound to an instance: looked up once
    instances = record_calls(monkeypatch, injector.InstanceProvider, "get")
    assert [inj.get(str) for _ in range(3)] == ["configured"] * 3
    assert instances == []
    assert inj.get(PerCall) is not inj.get(PerCall)  # unscoped: never kept


class Chicken:
    @injector.inject
    def __init__(self, egg: Egg) -> None:
        self.egg = egg


class Egg:
    @injector.inject
    def __init__(self, chicken: Chicken) -> None:
        self.chicken = chicken


class NeedsMore:
    @injector.inject
    def __init__(self, clock: Clock, count: int) -> None:  # count: no binding, no default
        self.clock = clock
        self.count = count


@pytest.mark.parametrize("sealed", [False, True])
def test_a_circular_dependency_is_injectors_error_and_leaves_the_injector_usable(
    sealed: bool,
) -> None:
    inj = build()
    if sealed:
        inj.seal()
    with pytest.raises(injector.CircularDependency, match="Chicken"):
        inj.get(Chicken)
    assert inj._stack == ()
    assert inj.get(Service).label == "configured"  # what was being provided is forgotten


def test_an_object_that_cannot_be_built_is_injectors_call_error() -> None:
    inj = build()
    with pytest.raises(injector.CallError, match="NeedsMore"):
        inj.create_object(NeedsMore, additional_kwargs={"unknown": 1})
    assert isinstance(inj.create_object(NeedsMore, {"count": 3}).clock, Clock)
    assert inj._stack == ()


def test_once_sealed_a_callable_provided_for_once_skips_the_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inj = build()
    record = record_calls(monkeypatch, inj, "args_to_inject")  # (function, bindings, owner)

    def stacked(function: Callable[..., Any]) -> int:
        return sum(call[0] is function for call in record)

    inj.get(Service)  # not sealed yet: every call checks
    inj.get(Service)
    assert stacked(Service.__init__) == 2
    inj.seal()
    first, second = inj.get(Service), inj.get(Service)
    assert stacked(Service.__init__) == 3  # once more after sealing, then never
    assert first is not second  # unscoped: new ones
    assert first.clock is not second.clock
    assert second.label == "configured"
    for _ in range(2):  # two ways of calling it: each checked once
        assert inj.call_with_injection(view, args=(7,)) == "7:now"
        assert inj.call_with_injection(view, kwargs={"item_id": 8, "extra": "!"}) == "8:now!"
    assert stacked(view) == 2


def test_a_call_whose_arguments_stand_in_for_dependencies_proves_no_absence_of_cycles() -> None:
    """Objects built with their cyclic dependency passed in do not let a later full build
    past the check: it is still injector's CircularDependency, not a RecursionError."""
    inj = build()
    inj.seal()
    inj.create_object(Chicken, {"egg": object()})
    inj.create_object(Egg, {"chicken": object()})
    with pytest.raises(injector.CircularDependency, match="Chicken"):
        inj.get(Chicken)


class Port(abc.ABC):
    @abc.abstractmethod
    def send(self) -> None: ...


class NeedsPort:
    @injector.inject
    def __init__(self, port: Port) -> None:
        self.port = port


@pytest.mark.parametrize("sealed", [False, True])
def test_an_abstract_class_bound_to_nothing_is_injectors_call_error(sealed: bool) -> None:
    inj = build()
    if sealed:
        inj.seal()
    with pytest.raises(injector.CallError, match="Port"):
        inj.get(NeedsPort)
