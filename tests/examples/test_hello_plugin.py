"""examples/hello-plugin as the host sees it: installed by ``make test`` as a user installs it.

What the plugin does is tested by its own tests, in ``examples/hello-plugin/tests``, with
``powerstrip.testing`` only, as a third-party author runs them (``make test-hello``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from flask import Flask

DISTRIBUTION = "powerstrip-hello"


@pytest.fixture(scope="module", autouse=True)
def distribution() -> metadata.Distribution:
    try:
        return metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{DISTRIBUTION} is not installed: `make test` installs examples/hello-plugin")


def test_installed_as_a_user_would(distribution: metadata.Distribution) -> None:
    direct_url = json.loads(distribution.read_text("direct_url.json") or "{}")
    # A built wheel in site-packages, not an editable checkout.
    assert not direct_url.get("dir_info", {}).get("editable", False)


def test_discovered_from_its_own_distribution(app: Flask) -> None:
    record = app.extensions["powerstrip.plugins"]["hello"]
    assert (record.state, record.distribution, record.version) == ("enabled", DISTRIBUTION, "0.1.0")
    assert record.routes == 4


def test_cli_command_runs_from_the_console_script(instance_path: Path) -> None:
    script = Path(sys.executable).parent / "powerstrip"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERSTRIP_")}
    env |= {
        "POWERSTRIP_ENVIRONMENT": "development",
        "POWERSTRIP_INSTANCE_PATH": str(instance_path),
        "POWERSTRIP_HELLO__GREETING": "Howdy",
        "POWERSTRIP_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [str(script), "hello", "greet", "Ada"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Howdy, Ada!\n"
