"""Host contracts: what the host (or another plugin) provides to every plugin by injection.

Ask for these by type in a constructor or a view; never build them yourself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

PluginState = Literal["enabled", "disabled", "failed"]


class Clock:
    """What time is it: inject this instead of calling ``datetime.now`` so tests can fix time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A dependency the readiness probe checks: ``probe()`` raises if it is down.

    Contribute checks from an injector module, so they get their collaborators injected::

        class CacheModule(injector.Module):
            @injector.multiprovider
            def health_checks(self, client: CacheClient) -> list[HealthCheck]:
                return [HealthCheck("cache", client.ping)]

    A probe must bound its own time (a connect timeout): readiness waits for it.
    """

    name: str
    probe: Callable[[], None]


@runtime_checkable
class RateLimits(Protocol):
    """Named limits a plugin applies itself (login attempts per account, ...).

    They count in the app limiter's storage, so with Redis every worker shares them.
    Limits are strings such as ``"5 per 15 minutes"``.
    """

    def hit(self, key: str, limit: str, *, detail: str = "Too many attempts.") -> None:
        """Count one attempt for ``key``; a 429 problem (with Retry-After) past ``limit``."""

    def exceeded(self, key: str, limit: str) -> bool:
        """Whether ``key`` has used up ``limit`` (without counting an attempt)."""

    def clear(self, key: str, limit: str) -> None:
        """Forget ``key``'s attempts against ``limit`` (after a success)."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What the registry tells about one installed plugin.

    :param scopes: scope -> description, as the plugin declared them
    :param grants: role -> scopes the plugin grants that role by default
    """

    name: str
    version: str | None
    state: PluginState
    reason: str | None = None
    scopes: Mapping[str, str] = field(default_factory=dict)
    grants: Mapping[str, Sequence[str]] = field(default_factory=dict)


@runtime_checkable
class PluginRegistry(Protocol):
    """Read-only view of the installed plugins (bound by the host)."""

    def plugins(self) -> Sequence[PluginInfo]:
        """Every installed plugin, by name: enabled, disabled and failed ones."""

    def enabled(self) -> Sequence[PluginInfo]:
        """The enabled plugins, in load order."""


@runtime_checkable
class Directory(Protocol):
    """Answers whether a principal id exists (bound by the plugin that manages principals).

    The accounts plugin binds it; a plugin that stores principal ids (project members, ...)
    asks it before storing one, so no phantom ids are kept.
    """

    def exists(self, subject: str) -> bool:
        """Whether ``subject`` names an existing, active principal."""
