"""The plugin under test: powerstrip.testing's fixtures build apps with only it enabled."""

from __future__ import annotations

import pytest


@pytest.fixture
def powerstrip_plugins() -> list[str]:
    return ["hello"]
