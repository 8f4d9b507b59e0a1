"""Plugin discovery and checking, before anything is registered in the app.

Order (each failure is one line naming the plugin and the cause):

1. enumerate entry points of ``powerstrip.plugins`` without importing them; apply the
   ``PLUGINS`` allow-list and ``PLUGINS_DISABLED``; reject invalid and duplicate names;
2. check the distribution's requirement on ``powerstrip`` against the running host version;
3. import; check the value is a :class:`~powerstrip.Plugin` named like its entry point;
   validate its configuration section with its settings schema;
4. check ``requires`` (missing, failed or cyclic dependencies) and order topologically.

A failed plugin takes everything that requires it down with it. Whether a failure stops
startup is the caller's decision (strict or lenient mode): :func:`discover` reports, it never
raises for a plugin's fault.
"""

from __future__ import annotations

import graphlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import marshmallow as ma
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from app.config import ENV_PREFIX, StartupError, first_error
from powerstrip.contracts import PluginInfo, PluginState
from powerstrip.plugin import (
    _SETTINGS_ENVIRONMENT,
    ENTRY_POINT_GROUP,
    Plugin,
    name_problem,
)

HOST_DISTRIBUTION = "powerstrip"

State = PluginState


class PluginError(StartupError):
    """A plugin cannot be loaded; the message is one line naming the plugin and the cause."""

    def __init__(self, plugin: str, cause: str) -> None:
        super().__init__(f"plugin {plugin!r}: {cause}")
        self.plugin = plugin
        self.cause = cause


@dataclass(frozen=True, slots=True)
class PluginRecord:
    """What the host knows about one installed plugin."""

    name: str
    distribution: str | None
    version: str | None
    state: State
    reason: str | None = None
    plugin: Plugin | None = None
    settings: object | None = None
    routes: int = 0
    blocked_by: str | None = None
    module: str | None = None

    @property
    def plugin_exempt(self) -> bool:
        """Whether the plugin asked to be exempt from the default rate limits."""
        return self.plugin is not None and self.plugin.rate_limit_exempt

    def info(self) -> PluginInfo:
        """What the SDK's registry tells plugins about this one."""
        plugin = self.plugin
        return PluginInfo(
            name=self.name,
            version=self.version,
            state=self.state,
            reason=self.reason,
            scopes=dict(plugin.scopes) if plugin is not None else {},
            grants={role: tuple(s) for role, s in plugin.grants.items()} if plugin else {},
        )

    def with_routes(self, routes: int) -> PluginRecord:
        """This record with its route count."""
        return replace(self, routes=routes)

    def failed(self, reason: str, *, blocked_by: str | None = None) -> PluginRecord:
        """This record, marked failed for ``reason`` (or because ``blocked_by`` failed)."""
        return replace(
            self, state="failed", reason=reason, plugin=None, settings=None, blocked_by=blocked_by
        )


@dataclass(frozen=True, slots=True)
class _Distribution:
    """What the loader reads of a plugin's distribution, parsed from METADATA once.

    (``Distribution.name``, ``.version`` and ``.requires`` each parse the file again.)
    """

    name: str
    version: str
    requires: tuple[str, ...]

    @classmethod
    def of(cls, entry_point: metadata.EntryPoint) -> _Distribution | None:
        if entry_point.dist is None:
            return None
        fields = entry_point.dist.metadata
        return cls(fields["Name"], fields["Version"], tuple(fields.get_all("Requires-Dist") or ()))


@dataclass(frozen=True, slots=True)
class Registry:
    """The SDK's :class:`~powerstrip.PluginRegistry` over this app's plugin records."""

    all: tuple[PluginInfo, ...]
    load_order: tuple[PluginInfo, ...]

    @classmethod
    def of(cls, records: Mapping[str, PluginRecord], order: Sequence[str]) -> Registry:
        """The registry of ``records``, enabled plugins in ``order``."""
        return cls(
            tuple(records[name].info() for name in sorted(records)),
            tuple(records[name].info() for name in order),
        )

    def plugins(self) -> Sequence[PluginInfo]:
        """Every installed plugin, by name."""
        return self.all

    def enabled(self) -> Sequence[PluginInfo]:
        """The enabled plugins, in load order."""
        return self.load_order


def _record(
    name: str, dist: _Distribution | None, state: State, reason: str | None
) -> PluginRecord:
    return PluginRecord(
        name=name,
        distribution=dist.name if dist is not None else None,
        version=dist.version if dist is not None else None,
        state=state,
        reason=reason,
    )


def _incompatibility(dist: _Distribution | None, host_version: str) -> str | None:
    if dist is None or canonicalize_name(dist.name) == HOST_DISTRIBUTION:
        return None
    for line in dist.requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != HOST_DISTRIBUTION:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            compatible = requirement.specifier.contains(Version(host_version), prereleases=True)
        except InvalidVersion:  # pragma: no cover - our own version is always valid
            return None
        if not compatible:
            return (
                f"incompatible host version: {dist.name} {dist.version} requires "
                f"powerstrip{requirement.specifier}, this host is {host_version}"
            )
    return None


def _import(entry_point: metadata.EntryPoint) -> Plugin | str:
    try:
        value = entry_point.load()
    except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's, reported
        return f"import failed: {type(exc).__name__}: {exc}"
    if not isinstance(value, Plugin):
        return (
            f"entry point {entry_point.value!r} is a {type(value).__name__}, "
            "not a powerstrip Plugin"
        )
    if value.name != entry_point.name:
        return f"declares name {value.name!r} but its entry point is named {entry_point.name!r}"
    if value.migrations is not None and not Path(value.migrations).is_dir():
        return f"migrations directory {str(value.migrations)!r} does not exist"
    return _authenticator_problem(value) or value


def _authenticator_problem(plugin: Plugin) -> str | None:
    """Why one of the plugin's authenticators breaks the contract, if one does."""
    for authenticator in plugin.authenticators:
        name = getattr(authenticator, "__name__", repr(authenticator))
        credentials = getattr(authenticator, "credentials", None)
        if not isinstance(authenticator, type) or not callable(
            getattr(authenticator, "authenticate", None)
        ):
            return f"authenticator {name} is not a class with an authenticate(request) method"
        if (
            not isinstance(credentials, tuple)
            or not credentials
            or not all(isinstance(header, str) and header for header in credentials)
        ):
            return (
                f"authenticator {name} must name the headers carrying its credentials: "
                'credentials = ("Authorization",)'
            )
    return None


def _settings(plugin: Plugin, section: Mapping[str, Any], environment: str) -> object | str | None:
    """The plugin's validated settings object, or why its section is invalid."""
    if plugin.settings is None:
        if section:
            return f"invalid settings: the plugin takes none, but {', '.join(sorted(section))} set"
        return None
    token = _SETTINGS_ENVIRONMENT.set(environment)
    try:
        value: object = plugin.settings(unknown=ma.RAISE).load(dict(section))
    except ma.ValidationError as exc:
        key, message = first_error(exc.messages)
        if message == "Unknown field.":
            message = "unknown key; check the spelling"
        env = f"{ENV_PREFIX}_{plugin.name.upper()}__{key}"
        return f"invalid settings: {key} (env {env}): {message}"
    finally:
        _SETTINGS_ENVIRONMENT.reset(token)
    if isinstance(value, dict):
        return "invalid settings: the schema must build an object with @post_load to be injected"
    return value


def _order(records: dict[str, PluginRecord]) -> list[str]:
    """Fail plugins with missing, failed or cyclic requirements; return the load order."""
    changed = True
    while changed:  # a failure can cascade through several levels of requires
        changed = False
        for name, record in records.items():
            if record.state != "enabled" or record.plugin is None:
                continue
            for needed in record.plugin.requires:
                other = records.get(needed)
                if other is None:
                    reason = f"missing dependency: requires {needed!r}, which is not installed"
                elif other.state != "enabled":
                    reason = f"missing dependency: requires {needed!r}, which is {other.state}"
                else:
                    continue
                cascade = other is not None and other.state == "failed"
                records[name] = record.failed(reason, blocked_by=needed if cascade else None)
                changed = True
                break
    enabled = {name: r.plugin for name, r in records.items() if r.state == "enabled" and r.plugin}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(enabled):
        sorter.add(name, *sorted(enabled[name].requires))
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1]
        path = " -> ".join(cycle)
        for name in set(cycle):
            records[name] = records[name].failed(f"dependency cycle: {path}")
        return _order(records)


@dataclass(frozen=True, slots=True)
class _Filters:
    host_version: str
    allow: Sequence[str] | None
    disabled: frozenset[str]
    excluded: Mapping[str, str]
    sections: Mapping[str, Mapping[str, Any]]
    environment: str


def _refusal(
    name: str,
    candidates: list[metadata.EntryPoint],
    dist: _Distribution | None,
    filters: _Filters,
) -> tuple[State, str] | None:
    """Why a plugin is not imported at all, or None if it may be."""
    if name in filters.disabled:
        return "disabled", "listed in PLUGINS_DISABLED"
    if filters.allow is not None and name not in filters.allow:
        return "disabled", "not listed in PLUGINS"
    if len(candidates) > 1:
        distributions = sorted({ep.dist.name if ep.dist else "?" for ep in candidates})
        return "failed", f"duplicate name: provided by {', '.join(distributions)}"
    problem = name_problem(name)
    if problem is not None:
        return "failed", problem
    if name in filters.excluded:
        return "failed", filters.excluded[name]
    reason = _incompatibility(dist, filters.host_version)
    return ("failed", reason) if reason else None


def _check(name: str, candidates: list[metadata.EntryPoint], filters: _Filters) -> PluginRecord:
    first = candidates[0]
    dist = _Distribution.of(first)
    refusal = _refusal(name, candidates, dist, filters)
    if refusal is not None:
        return _record(name, dist, *refusal)
    loaded = _import(first)
    if isinstance(loaded, str):
        return _record(name, dist, "failed", loaded)
    settings = _settings(loaded, filters.sections.get(name, {}), filters.environment)
    if isinstance(settings, str):
        return _record(name, dist, "failed", settings)
    enabled = _record(name, dist, "enabled", None)
    return replace(
        enabled, version=loaded.version, plugin=loaded, settings=settings, module=first.module
    )


def discover(
    *,
    host_version: str,
    allow: Sequence[str] | None,
    disabled: Iterable[str],
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    excluded: Mapping[str, str] | None = None,
    environment: str = "production",
) -> tuple[dict[str, PluginRecord], list[str]]:
    """Find, check and order the installed plugins.

    :param sections: configuration sections by plugin name, validated by each plugin's schema
    :param excluded: plugins that failed a later step (name -> reason), reported as failed
    :returns: a record for every installed plugin (and for every name in ``allow`` that is
        not installed) and the names of the enabled plugins in load order
    """
    filters = _Filters(
        host_version, allow, frozenset(disabled), excluded or {}, sections or {}, environment
    )
    by_name: dict[str, list[metadata.EntryPoint]] = defaultdict(list)
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        by_name[entry_point.name].append(entry_point)
    records = {name: _check(name, by_name[name], filters) for name in sorted(by_name)}
    for name in allow or ():
        if name not in records:
            records[name] = _record(name, None, "failed", "listed in PLUGINS but not installed")
    order = _order(records)
    return records, order
