"""The ``powerstrip`` console script and the WSGI entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import cli

ROOT = Path(__file__).resolve().parent.parent


def run(
    args: list[str], env: dict[str, str], *, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POWERSTRIP_")}
    return subprocess.run(
        args, env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_console_script_shows_config(instance_path: Path) -> None:
    script = Path(sys.executable).parent / "powerstrip"
    result = run(
        [str(script), "config", "show"],
        {"POWERSTRIP_ENVIRONMENT": "development", "POWERSTRIP_INSTANCE_PATH": str(instance_path)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ENVIRONMENT"] == "development"


def test_console_script_reports_bad_config_in_one_line(instance_path: Path) -> None:
    script = Path(sys.executable).parent / "powerstrip"
    result = run(
        [str(script), "config", "show"],
        {"POWERSTRIP_ENVIRONMENT": "production", "POWERSTRIP_INSTANCE_PATH": str(instance_path)},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "powerstrip: configuration key SECRET_KEY: required outside development and testing."
    ]


def test_console_script_in_process(monkeypatch: pytest.MonkeyPatch, instance_path: Path) -> None:
    monkeypatch.setenv("POWERSTRIP_ENVIRONMENT", "testing")
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(instance_path))
    monkeypatch.setattr(sys, "argv", ["powerstrip", "config", "show"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 0


def test_bad_config_exits_in_process(monkeypatch: pytest.MonkeyPatch, instance_path: Path) -> None:
    monkeypatch.setenv("POWERSTRIP_ENVIRONMENT", "production")
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(instance_path))
    monkeypatch.setattr(sys, "argv", ["powerstrip", "config", "show"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2


def test_flask_app_wsgi_reports_bad_config_in_one_line(instance_path: Path) -> None:
    flask = Path(sys.executable).parent / "flask"
    result = run(
        [str(flask), "--app", "wsgi", "config", "show"],
        {"POWERSTRIP_MAX_CONTENT_LENGTH": "lots", "POWERSTRIP_INSTANCE_PATH": str(instance_path)},
    )
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        "powerstrip: configuration key MAX_CONTENT_LENGTH: Not a valid integer."
    ]
