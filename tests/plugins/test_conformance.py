"""The first-party plugins pass the conformance suite that every plugin's own tests run.

On PostgreSQL with ``make test-pg`` (``--powerstrip-database-url``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from powerstrip.testing import PluginConformance

SIGNING = {"SIGNING_KEYS": {"k1": "conformance-signing-key-0123456789abcdef"}, "CURRENT_KEY": "k1"}


@pytest.mark.parametrize(
    ("name", "plugins", "config", "operations"),
    [
        ("health", (), {}, 2),
        # With its signing keys configured: the suite checks `plugins config` redacts them.
        ("accounts", (), {"accounts": SIGNING}, 13),
        # Its Directory contract is bound by accounts.
        ("tasks", ("accounts",), {}, 15),
    ],
)
def test_first_party_plugin_conforms(
    plugin_conformance: PluginConformance,
    name: str,
    plugins: Sequence[str],
    config: Mapping[str, Any],
    operations: int,
) -> None:
    report = plugin_conformance(name, plugins=plugins, config=config)
    documented = [line for line in report.checked if line.endswith(" is documented")]
    assert len(documented) == operations
    if name == "accounts":
        assert "plugins config redacts the secret settings" in report.checked
