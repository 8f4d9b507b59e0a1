"""End to end, as a plugin author: ``powerstrip plugins new``, a fresh environment, green tests.

The author's three commands (README.md of the new project), with two differences: the fresh
environment is made by this host's uv (``uv venv``, not ``python -m venv`` plus pip installing
uv), and nothing reaches the network: uv installs offline, from its cache, which the host's own
``make`` bootstrap filled with every package needed (hatchling included, to build the two
editable installs). Each step's time is recorded (``record_property``) and printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STEP_SECONDS = 600

pytestmark = pytest.mark.e2e


def author_environment() -> dict[str, str]:
    """The environment of a shell: none of this test run's variables, no active venv."""
    dropped = ("POWERSTRIP_", "PYTEST_", "COV_", "COVERAGE_", "UV_", "VIRTUAL_ENV")
    kept = {"UV_CACHE_DIR"}  # where the bootstrap's packages are: the offline install needs them
    return {k: v for k, v in os.environ.items() if k in kept or not k.startswith(dropped)}


def test_a_new_plugin_goes_from_nothing_to_green_tests(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    environment = author_environment()
    timings: dict[str, float] = {}

    def step(name: str, args: list[str], cwd: Path) -> str:
        started = time.perf_counter()
        result = subprocess.run(
            args,
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=STEP_SECONDS,
            check=False,
        )
        timings[name] = round(time.perf_counter() - started, 2)
        record_property(f"scaffold_{name}_seconds", timings[name])
        print(f"{name}: {timings[name]:.2f}s")  # shown with -s or -rP
        assert result.returncode == 0, (
            f"{name} exited {result.returncode}: {' '.join(args)}\n{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    project = tmp_path / "powerstrip-demo"
    step("new", [str(BIN / "powerstrip"), "plugins", "new", "demo"], tmp_path)
    # README.md's three commands, in the project: a venv, the two editable installs, pytest.
    step("venv", [str(BIN / "uv"), "venv", "--quiet", "--python", sys.executable], project)
    step(
        "install",
        [
            *(str(BIN / "uv"), "pip", "install", "--offline", "--python", ".venv/bin/python"),
            *("-e", f"{ROOT}[test]", "-e", ".[test]"),
        ],
        project,
    )
    output = step("tests", [".venv/bin/pytest"], project)
    assert " passed in " in output.splitlines()[-1], output  # pytest's closing line
    record_property("scaffold_total_seconds", round(sum(timings.values()), 2))
