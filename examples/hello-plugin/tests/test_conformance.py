"""What the host promises about every plugin, checked on this one (powerstrip.testing)."""

from __future__ import annotations

from powerstrip.testing import PluginConformance


def test_conformance(plugin_conformance: PluginConformance) -> None:
    plugin_conformance("hello")
