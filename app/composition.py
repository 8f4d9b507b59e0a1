"""Compose checked plugins into the app: blueprints, CLI, injector modules, FlaskInjector.

Raises :class:`~app.loader.PluginError` naming the plugin for a route or operationId
collision, a broken injector module, a missing binding or a view flask-injector cannot serve.
Every injected dependency of every plugin view is resolved here, at startup, so a missing
binding fails ``create_app`` rather than the first request.
"""

from __future__ import annotations

import inspect
import logging
import typing
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import flask_injector
import injector
from flask import Flask, has_request_context
from flask.globals import request_ctx
from flask_injector import FlaskInjector

from app.api import PowerstripApi
from app.config import HostConfig
from app.loader import PluginError, PluginRecord
from powerstrip.auth import Authenticator
from powerstrip.cli import detached_environ
from powerstrip.conditional import CONDITIONAL, WRITE_METHODS
from powerstrip.contracts import Clock, HealthCheck, PluginRegistry, RateLimits
from powerstrip.db import Model
from powerstrip.events import EventBus
from powerstrip.http import PASSES, marks
from powerstrip.plugin import InjectorModule, Plugin

T = TypeVar("T")
log = logging.getLogger(__name__)


class CoreModule(injector.Module):
    """Binds the host contracts every plugin may ask for."""

    def __init__(
        self,
        config: HostConfig,
        events: EventBus,
        checks: list[HealthCheck],
        rate_limits: RateLimits,
        registry: PluginRegistry,
    ) -> None:
        self._config = config
        self._events = events
        self._checks = checks
        self._rate_limits = rate_limits
        self._registry = registry

    def configure(self, binder: injector.Binder) -> None:
        binder.bind(HostConfig, to=self._config)
        binder.bind(Clock, to=Clock(), scope=injector.singleton)
        binder.bind(EventBus, to=self._events)
        binder.multibind(list[HealthCheck], to=self._checks)  # plugins add theirs
        binder.bind(RateLimits, to=self._rate_limits)  # type: ignore[type-abstract]
        binder.bind(PluginRegistry, to=self._registry)  # type: ignore[type-abstract]


# flask-injector's request hooks that start and end its scope (FlaskInjector.__init__'s).
_SCOPE_HOOKS = frozenset(
    {
        "reset_request_scope_before",
        "global_reset_request_scope_after",
        "blueprint_reset_request_scope_after",
    }
)


class RequestScope(flask_injector.RequestScope):
    """flask-injector's request scope (``powerstrip.request_scope``), its objects kept per
    Flask request context: one of each per request (or command), let go with the request.

    flask-injector keeps them in a werkzeug ``Local`` that hooks empty before and after every
    request (about 20 function calls a request, most for its teardown's check of the
    request's blueprint). Here each request context, new with every request, has its own
    objects (in a weak mapping: they go when the context goes), so neither hook is needed
    (:func:`install_injector` removes them). A copy of the context
    (``copy_current_request_context``, for a thread) is a context of its own: a thread never
    gets the request's session. :meth:`prepare` and :meth:`cleanup` start and end a scope
    where code does so itself (``powerstrip.cli``'s commands, tests); after :meth:`cleanup`,
    the next object asked for starts a new scope (flask-injector's raised an error). Outside a
    request context there is no scope: asking for a request-scoped object there is Flask's
    "outside of request context" error (flask-injector's was an ``AttributeError``).
    """

    def configure(self) -> None:
        """No ``Local``: a weak mapping of request contexts to their objects."""
        self._scopes: weakref.WeakKeyDictionary[object, dict[Any, _Once[Any]]] = (
            weakref.WeakKeyDictionary()
        )

    def prepare(self) -> None:
        """Start a fresh scope for the current request."""
        self._scopes[_current_context()] = {}

    def cleanup(self) -> None:
        """End the current request's scope, if any."""
        if has_request_context():
            self._scopes.pop(_current_context(), None)

    def get(self, key: Any, provider: injector.Provider[T]) -> injector.Provider[T]:
        context = _current_context()  # outside a request: Flask's RuntimeError
        objects = self._scopes.get(context)
        if objects is None:
            objects = self._scopes[context] = {}
        found = objects.get(key)
        if found is None:
            found = objects[key] = _Once(provider)
        return found


# The current request context (flask.globals.request_ctx's object), looked up once per call.
_current_context: Callable[[], object] = request_ctx._get_current_object  # type: ignore[attr-defined]


_UNSET: Any = object()


class _Once(injector.Provider[T]):
    """``provider``'s object, built on first asking and then kept (for one request).

    flask-injector's ``CachedProviderWrapper`` does the same keyed by injector; each
    :class:`RequestScope` serves one injector, and the key cost 8 to 10 calls a request."""

    __slots__ = ("_instance", "_provider")

    def __init__(self, provider: injector.Provider[T]) -> None:
        self._provider = provider
        self._instance: T = _UNSET

    def get(self, injector_: injector.Injector) -> T:
        if self._instance is _UNSET:
            self._instance = self._provider.get(injector_)
        return self._instance


def _drop_scope_hooks(app: Flask) -> None:
    """Remove flask-injector's hooks that start and end its request scope on every request
    (:class:`RequestScope` needs neither). A hook of another name is left alone: if a
    flask-injector release renames them, they still run, and still work on this scope."""
    registries: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs,
        app.teardown_request_funcs,
    )
    for registry in registries:
        for functions in registry.values():
            functions[:] = [
                function
                for function in functions
                if not (
                    getattr(function, "__module__", None) == flask_injector.__name__
                    and getattr(function, "__name__", None) in _SCOPE_HOOKS
                )
            ]


@dataclass(frozen=True, slots=True)
class _Reflected:
    """What injector reads of a callable on every call, read once."""

    signature: inspect.Signature
    bindings: dict[str, Any]
    positional: tuple[str, ...]  # the parameters positional arguments fill, in order

    @classmethod
    def of(cls, function: Callable[..., Any]) -> _Reflected:
        signature = inspect.signature(function)
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        positional = tuple(
            name for name, parameter in signature.parameters.items() if parameter.kind in kinds
        )
        return cls(signature, injector.get_bindings(function), positional)

    def passed(self, arguments: tuple[Any, ...]) -> Collection[str]:
        """The parameters ``arguments`` fill (``signature.bind_partial``'s, without binding)."""
        if len(arguments) <= len(self.positional):
            return self.positional[: len(arguments)]
        return self.signature.bind_partial(*arguments).arguments  # *args, or the TypeError


class Injector(injector.Injector):
    """injector's Injector, reading each callable's signature and each binding once.

    ``call_with_injection`` (every view call and every object the injector builds) is
    injector's own, but for the reflection: injector reads ``inspect.signature`` of the
    callable on every call (and its type hints when it has no ``@inject``); here both are read
    the first time and kept, for the life of this injector.

    Once sealed (:meth:`seal`: the app is built, no binding changes after), ``get`` looks each
    interface's binding and scope up once too (injector looks both up, and logs twice at debug
    level, on every call). What never changes is kept: a singleton once built (injector's
    singleton scope answers under its process-wide lock on every call) and an instance bound as
    such. Other scopes and providers still decide every time what to return, so a
    request-scoped object is still one per request and an unscoped one new each time.

    Injector provides a callable's dependencies under one process-wide lock, keeping a stack to
    find circular dependencies by. Once sealed, a call provided for once without one (the same
    callable, as many arguments, the same keywords) gets the same dependencies straight from
    ``get`` afterwards, without reading the callable again (a view is called the same way every
    time): the graph below them cannot change, so neither stack nor lock is needed (scopes lock
    what they share themselves: singletons are built under injector's lock).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reflected: dict[Callable[..., Any], _Reflected] = {}
        # Once sealed: interface -> (provider, scope, whether what it provides never changes).
        self._resolved: dict[Any, tuple[injector.Provider[Any], injector.Scope, bool]] | None = None
        # Once sealed: what an interface whose answer never changes (a singleton once built,
        # an instance bound as such) answered.
        self._constants: dict[Any, Any] = {}
        # (callable, arguments given, keywords given) -> the dependencies to inject, kept once
        # provided without a cycle since sealing: no cycle below those dependencies (it would
        # have been met), so later calls skip the reflection, the stack and the lock
        # args_to_inject keeps. A view is called the same way every time.
        self._plans: dict[
            tuple[Callable[..., Any], int, tuple[str, ...]], tuple[tuple[str, Any], ...]
        ] = {}

    def seal(self) -> None:
        """The bindings are final: look each up once from now on."""
        self._resolved = {}

    def get(
        self,
        interface: type[T],
        scope: injector.ScopeDecorator | type[injector.Scope] | None = None,
    ) -> T:
        resolved = self._resolved
        if resolved is None or scope is not None:
            return super().get(interface, scope)
        if interface in self._constants:
            constant: T = self._constants[interface]
            return constant
        found = resolved.get(interface)
        if found is None:  # injector.Injector.get's lookups, without its result
            binding, binder = self.binder.get_binding(interface)
            scope_binding, _ = binder.get_binding(binding.scope)  # a Scope class, bound once
            scope_instance = scope_binding.provider.get(self)
            constant_answer = type(scope_instance) is injector.SingletonScope or (
                type(scope_instance) is injector.NoScope
                and type(binding.provider) is injector.InstanceProvider
            )
            found = resolved[interface] = (binding.provider, scope_instance, constant_answer)
        provider, scope_instance, constant_answer = found
        instance: T = scope_instance.get(interface, provider).get(self)
        if constant_answer:  # a singleton (built now, under injector's lock) or an instance
            self._constants[interface] = instance
        return instance

    def create_object(self, cls: type[T], additional_kwargs: Any = None) -> T:
        """injector's, without its debug log line (formatted arguments on every object)."""
        try:
            instance = cls.__new__(cls)
        except TypeError as e:  # an abstract class bound to nothing, say: injector's CallError
            new = getattr(cls.__new__, "__func__", cls.__new__)
            injector.reraise(e, injector.CallError(cls, new, (), {}, e, self._stack))
        try:
            self.call_with_injection(cls.__init__, self_=instance, kwargs=additional_kwargs)
        except TypeError as e:
            injector.reraise(
                e,
                injector.CallError(
                    instance, cls.__init__, (), additional_kwargs or {}, e, self._stack
                ),
            )
        return instance

    @injector.synchronized(injector.lock)
    def args_to_inject(
        self, function: Callable[..., Any], bindings: dict[str, Any], owner_key: object
    ) -> dict[str, Any]:
        """injector's, without its debug log line and its sorting of ``bindings`` in the key
        of the stack it finds circular dependencies by (a callable met again, asked for the
        same, while it is being provided): ``bindings`` come in the callable's own order."""
        if not bindings:
            return {}
        key = (owner_key, function, tuple(bindings.items()))
        if key in self._stack:
            chain = " -> ".join(_described(entry) for entry in (*self._stack, key))
            raise injector.CircularDependency(f"circular dependency detected: {chain}")
        self._stack += (key,)
        try:
            return {name: self.get(interface) for name, interface in bindings.items()}
        finally:
            self._stack = self._stack[:-1]

    def call_with_injection(
        self,
        callable: Callable[..., T],  # noqa: A002 - injector's parameter name (FlaskInjector passes it)
        self_: Any = None,
        args: Any = (),
        kwargs: Any = None,
    ) -> T:
        full_args = args if self_ is None else (self_, *args)
        plan = (callable, len(full_args), tuple(kwargs) if kwargs else ())
        needed = self._plans.get(plan)
        if needed is not None:
            dependencies = {name: self.get(interface) for name, interface in needed}
        else:
            dependencies = self._first_call(callable, self_, full_args, kwargs or {}, plan)
        if kwargs:
            dependencies.update(kwargs)
        try:
            return callable(*full_args, **dependencies)
        except TypeError as e:
            injector.reraise(
                e, injector.CallError(self_, callable, args, dependencies, e, self._stack)
            )

    def _first_call(
        self,
        callable: Callable[..., Any],  # noqa: A002 - as call_with_injection's
        self_: Any,
        full_args: tuple[Any, ...],
        kwargs: dict[str, Any],
        plan: tuple[Callable[..., Any], int, tuple[str, ...]],
    ) -> dict[str, Any]:
        """The dependencies of a call not planned yet, provided as injector provides them
        (the stack finds circular dependencies); planned once sealed."""
        reflected = self._reflected.get(callable)
        if reflected is None:
            reflected = _Reflected.of(callable)
            self._reflected[callable] = reflected
        passed = reflected.passed(full_args)
        bindings = reflected.bindings
        needed = {k: v for k, v in bindings.items() if k not in kwargs and k not in passed}
        dependencies = self.args_to_inject(
            function=callable,
            bindings=needed,
            owner_key=self_.__class__ if self_ is not None else callable.__module__,
        )
        if self._resolved is not None:  # sealed: the graph below can no longer change
            self._plans[plan] = tuple(needed.items())
        return dependencies


def _described(key: tuple[Any, Callable[..., Any], tuple[tuple[str, Any], ...]]) -> str:
    """An entry of the injector's stack as injector describes it."""
    owner, function, bindings = key
    where = getattr(owner, "__qualname__", owner)
    return f"{where}.{function.__qualname__}(injecting {dict(bindings)})"


def _route_keys(app: Flask) -> set[tuple[str, str, str]]:
    return {
        (rule.rule, method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }


def register_blueprints(app: Flask, api: PowerstripApi, plugin: Plugin, prefix: str) -> list[str]:
    """Mount the plugin's blueprints under ``prefix/<name>``; return their Flask names."""
    before = _route_keys(app)
    names = api.register_plugin(plugin, f"{prefix}/{plugin.name}")
    after = _route_keys(app)
    existing = {(rule, method) for rule, method, _ in before}
    clashes = sorted(
        {f"{method} {rule}" for rule, method, _ in after - before if (rule, method) in existing}
    )
    if clashes:
        raise PluginError(plugin.name, f"route collision: {', '.join(clashes)} already exists")
    return names


def _passed_by_request(function: Callable[..., Any], url_arguments: set[str]) -> set[str]:
    """Parameters flask and flask-smorest fill: URL variables and @arguments values.

    flask-smorest passes @arguments values positionally, before any other parameter; it
    records them on its outermost wrapper (``_apidoc``), which is what ``function`` is.
    """
    apidoc = getattr(function, "_apidoc", {})
    passed = len(apidoc.get("arguments", {}).get("parameters", []))
    positional = [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.KEYWORD_ONLY
    ][:passed]
    paginated = {"pagination_parameters"} if "pagination" in apidoc else set()
    sdk = set(marks(function).get(PASSES, ()))  # @conditional's Precondition, @paginated's ...
    return url_arguments | set(positional) | paginated | sdk


def _function_view_needs(view: Callable[..., Any], url_arguments: set[str]) -> dict[str, Any]:
    """The annotated parameters of a function view that nothing but the injector fills."""
    function = inspect.unwrap(view)
    hints = typing.get_type_hints(function)
    parameters = inspect.signature(function).parameters
    passed = _passed_by_request(view, url_arguments)
    return {
        name: hint
        for name, hint in hints.items()
        if name in parameters and name != "self" and name not in passed
    }


def _warn_schema_classes(plugin: str, endpoint: str, view: Callable[..., Any]) -> None:
    """``@arguments(SomeSchema)`` (a class) makes webargs build the schema on every request;
    an instance is built once. Same document, same validation: say so at startup."""
    parameters = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    for parameter in parameters:
        schema = parameter.get("schema")
        if isinstance(schema, type):
            log.warning(
                "plugin %s: view %s takes @arguments(%s), a class, which is built on every "
                "request; pass an instance, %s()",
                plugin,
                endpoint,
                schema.__name__,
                schema.__name__,
            )


def _check_conditional(
    plugin: str, endpoint: str, view: Callable[..., Any], methods: set[str]
) -> None:
    """A ``@conditional`` write must take the ``Precondition`` it hands its service."""
    conditional = marks(view).get(CONDITIONAL)
    writes = sorted(methods & WRITE_METHODS)
    if conditional and writes and conditional.get("precondition") is None:
        raise PluginError(
            plugin,
            f"view {endpoint} is @conditional and answers {', '.join(writes)} but takes no "
            "Precondition parameter: its If-Match would never be checked",
        )


def _class_view_needs(
    plugin: str, endpoint: str, view_class: type[Any], url_arguments: set[str]
) -> dict[str, Any]:
    # flask-injector builds a class-based view with Injector.create_object: only its
    # __init__ (marked @inject) is injected; a service asked for by a method never arrives.
    for method in sorted(getattr(view_class, "methods", None) or ()):
        handler = getattr(view_class, method.lower())
        _warn_schema_classes(plugin, f"{endpoint}.{method.lower()}", handler)
        passed = _passed_by_request(handler, url_arguments)
        missing = [
            name
            for name, parameter in inspect.signature(handler).parameters.items()
            if name != "self"
            and name not in passed
            and parameter.default is inspect.Parameter.empty
            and parameter.kind not in {parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD}
        ]
        if missing:
            raise PluginError(
                plugin,
                f"view {endpoint}.{method.lower()} takes {', '.join(missing)}, but "
                "flask-injector injects class-based views only through an @inject __init__",
            )
    return dict(injector.get_bindings(view_class.__init__))


def prepare_views(app: Flask, owners: Mapping[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Work out what each plugin view needs injected, before FlaskInjector wraps the views.

    flask-injector would inject every annotated parameter of a function view, including the
    ones flask-smorest passes (``@arguments`` values), so each function view is given its
    explicit ``__bindings__``: the annotated parameters nothing else fills. Views
    flask-injector 0.15 cannot serve are refused here.

    :returns: endpoint -> (plugin, parameter name -> type to inject)
    """
    arguments: dict[str, set[str]] = {}
    methods: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        arguments.setdefault(rule.endpoint, set()).update(rule.arguments)
        methods.setdefault(rule.endpoint, set()).update(rule.methods or ())
    needs: dict[str, tuple[str, dict[str, Any]]] = {}
    for endpoint, view in app.view_functions.items():
        plugin = owners.get(endpoint.partition(".")[0])
        if plugin is None:
            continue
        url_arguments = arguments.get(endpoint, set())
        view_class = getattr(view, "view_class", None)
        if view_class is not None:
            if not getattr(view_class, "init_every_request", True):
                raise PluginError(
                    plugin,
                    f"view {endpoint} sets init_every_request = False, which flask-injector "
                    "0.15 cannot serve; remove it",
                )
            needs[endpoint] = (
                plugin,
                _class_view_needs(plugin, endpoint, view_class, url_arguments),
            )
            continue
        _check_conditional(plugin, endpoint, view, methods.get(endpoint, set()))
        _warn_schema_classes(plugin, endpoint, view)
        try:
            needed = _function_view_needs(view, url_arguments)
        except Exception as exc:  # noqa: BLE001 - an unresolvable annotation, reported
            raise PluginError(
                plugin, f"view {endpoint}: cannot read its annotations: {type(exc).__name__}: {exc}"
            ) from None
        if needed and inspect.iscoroutinefunction(inspect.unwrap(view)):
            raise PluginError(
                plugin,
                f"view {endpoint} is async with injected arguments, which "
                "flask-injector 0.15 cannot serve; make it a plain function",
            )
        vars(view)["__bindings__"] = needed  # flask-injector injects exactly these
        needs[endpoint] = (plugin, needed)
    return needs


def resolve_views(
    app: Flask,
    inj: injector.Injector,
    needs: Mapping[str, tuple[str, dict[str, Any]]],
    authenticators: list[tuple[str, type[Authenticator]]],
) -> None:
    """Resolve every injected dependency of every plugin view now, inside a request.

    Each plugin's authenticators are built here too.
    """
    with app.request_context(detached_environ()):
        for plugin, authenticator in authenticators:
            try:
                inj.get(authenticator)
            except Exception as exc:  # noqa: BLE001 - reported with its cause
                raise PluginError(
                    plugin,
                    f"authenticator {authenticator.__name__} cannot be built: "
                    f"{type(exc).__name__}: {exc}",
                ) from None
        for endpoint, (plugin, needed) in needs.items():
            for name, dependency in needed.items():
                try:
                    inj.get(dependency)
                except Exception as exc:  # noqa: BLE001 - reported with its cause
                    kind = getattr(dependency, "__name__", repr(dependency))
                    raise PluginError(
                        plugin,
                        f"missing DI binding: view {endpoint} needs {name}: {kind} "
                        f"({type(exc).__name__}: {exc})",
                    ) from None


def install_injector(
    app: Flask,
    core: list[injector.Module],
    records: list[PluginRecord],
    owners: Mapping[str, str],
    extra: Sequence[InjectorModule] = (),
) -> injector.Injector:
    """Build the one Injector of this app, apply FlaskInjector, check every view's needs.

    Each plugin's settings object is bound by its type before the plugin's own modules.
    ``extra`` modules (a test's fakes) are installed after every plugin's, so their bindings
    win, and before the views' needs are checked, so a fake may supply a missing binding.
    """
    inj = Injector(core, auto_bind=True)
    # flask-injector's scope class, which powerstrip.request_scope names, is this scope.
    inj.binder.bind(flask_injector.RequestScope, to=RequestScope(inj))
    for record in records:
        plugin = record.plugin
        if plugin is None:  # pragma: no cover - only enabled records are passed
            continue
        if record.settings is not None:
            inj.binder.bind(type(record.settings), to=record.settings)
        for module in plugin.modules:
            try:
                inj.binder.install(module)
            except Exception as exc:  # noqa: BLE001 - the plugin's fault, reported
                raise PluginError(
                    plugin.name, f"injector module failed: {type(exc).__name__}: {exc}"
                ) from None
    for module in extra:
        inj.binder.install(module)
    needs = prepare_views(app, owners)
    FlaskInjector(app=app, injector=inj)
    _drop_scope_hooks(app)
    resolve_views(app, inj, needs, authenticators(records))
    inj.seal()
    return inj


def authenticators(records: list[PluginRecord]) -> list[tuple[str, type[Authenticator]]]:
    """(plugin, authenticator class) of every enabled plugin, in load order."""
    return [
        (record.name, authenticator)
        for record in records
        if record.plugin is not None
        for authenticator in record.plugin.authenticators
    ]


def check_tables(records: list[PluginRecord]) -> None:
    """Every table a plugin's models define is named ``<plugin>_...`` and no one else's.

    A model belongs to the plugin whose entry-point module contains it. A table that fits a
    longer plugin name too (``hello_world_items`` from ``hello`` beside ``hello_world``) would
    take that plugin's namespace, so it is refused.
    """
    owners = {record.module: record.name for record in records if record.module}
    names = [record.name for record in records]
    for mapper in Model.registry.mappers:
        module = mapper.class_.__module__
        owner = next(
            (
                name
                for root, name in owners.items()
                if module == root or module.startswith(f"{root}.")
            ),
            None,
        )
        if owner is None:
            continue
        for table in mapper.tables:
            if not table.name.startswith(f"{owner}_"):
                raise PluginError(owner, f"table {table.name!r} must be named {owner}_...")
            for other in names:
                if len(other) > len(owner) and table.name.startswith(f"{other}_"):
                    raise PluginError(
                        owner, f"table {table.name!r} collides with plugin {other!r}'s tables"
                    )
