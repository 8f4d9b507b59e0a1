"""The plugin SDK's public surface is deliberate, light to import and independent of the host."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import powerstrip

HEAVY = ("alembic", "flask_migrate", "flask_limiter", "redis", "flask_cors", "psycopg", "app")


def test_exported_names() -> None:
    assert sorted(powerstrip.__all__) == [
        "API_KEY_HEADER",
        "Authenticator",
        "Caller",
        "Clock",
        "Directory",
        "ENTRY_POINT_GROUP",
        "EventBus",
        "HealthCheck",
        "IDEMPOTENCY_KEY_HEADER",
        "IDEMPOTENT_REPLAYED_HEADER",
        "IF_MATCH_HEADER",
        "Model",
        "NO_STORE_HEADERS",
        "Page",
        "PageQuery",
        "PageRequest",
        "Plugin",
        "PluginContext",
        "PluginInfo",
        "PluginMetrics",
        "PluginRegistry",
        "Precondition",
        "Principal",
        "Problem",
        "REQUEST_ID_HEADER",
        "RateLimits",
        "UnitOfWork",
        "UtcDateTime",
        "Versioned",
        "conditional",
        "fetch_page",
        "idempotent",
        "injected",
        "paginated",
        "problem_responses",
        "refuse_long_strings",
        "request_scope",
        "requires",
        "settings_environment",
    ]
    for name in powerstrip.__all__:
        assert getattr(powerstrip, name) is not None


def test_import_is_light_and_never_loads_the_host() -> None:
    # A fresh interpreter: this test process has long imported the host.
    code = (
        "import json, sys, powerstrip; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            ).stdout
        )
    )
    assert "powerstrip" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_plugin_guide_lists_exactly_the_exported_names() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    section = guide.split("## The SDK: `powerstrip`", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \| \S", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(powerstrip.__all__)
    assert len(listed) == len(set(listed))
