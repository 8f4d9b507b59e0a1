"""``flask hello greet``: the command the plugin adds to the host's CLI."""

from __future__ import annotations

from flask.testing import FlaskCliRunner


def test_greets_from_the_command_line(powerstrip_runner: FlaskCliRunner) -> None:
    result = powerstrip_runner.invoke(args=["hello", "greet", "Ada"])
    assert result.exit_code == 0, result.output
    assert result.output == "Hello, Ada!\n"


def test_refuses_a_name_too_long(powerstrip_runner: FlaskCliRunner) -> None:
    result = powerstrip_runner.invoke(args=["hello", "greet", "x" * 51])
    assert result.exit_code == 1
    assert result.output == "Error: A name must be 1 to 50 characters. name: Invalid length.\n"
