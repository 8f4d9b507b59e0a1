"""Roles and the scopes they grant: the operator's table, or every plugin's default grants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from plugins.accounts.settings import AccountsSettings
from powerstrip import PluginRegistry

ADMIN_ROLE = "admin"
ALL_SCOPES = "*"


@dataclass(frozen=True, slots=True)
class RoleScopes:
    """Role -> scopes.

    ``ROLE_SCOPES`` from the settings when the operator set it; otherwise ``admin`` holds every
    scope and each other role the scopes every enabled plugin grants it (``Plugin.grants``).
    """

    table: Mapping[str, frozenset[str]]

    @classmethod
    def build(cls, settings: AccountsSettings, registry: PluginRegistry) -> RoleScopes:
        """The table in force for this app."""
        if settings.ROLE_SCOPES is not None:
            return cls({role: frozenset(scopes) for role, scopes in settings.ROLE_SCOPES.items()})
        table: dict[str, set[str]] = {ADMIN_ROLE: {ALL_SCOPES}}
        for info in registry.enabled():
            for role, scopes in info.grants.items():
                table.setdefault(role, set()).update(scopes)
        return cls({role: frozenset(scopes) for role, scopes in table.items()})

    def __contains__(self, role: object) -> bool:
        return role in self.table

    def of(self, role: str) -> frozenset[str]:
        """What ``role`` allows (nothing for an unknown role)."""
        return self.table.get(role, frozenset())
