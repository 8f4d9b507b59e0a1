"""``flask tasks ...`` commands: the same services the views use, one unit of work each."""

from __future__ import annotations

import re
from datetime import timedelta

import click

from plugins.tasks.service import TaskService
from powerstrip import injected

commands = click.Group("tasks", help="Projects and tasks.")
_AGE = re.compile(r"^(\d{1,5})([dh])$")


def parse_age(value: str) -> timedelta:
    """``30d`` or ``12h``."""
    match = _AGE.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter("use a number of days or hours, such as 30d or 12h")
    amount, unit = int(match[1]), match[2]
    return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


@commands.command("purge-done")
@click.option("--older-than", default="30d", show_default=True, help="Age such as 30d or 12h.")
@injected
def purge_done(older_than: str, service: TaskService) -> None:
    """Delete tasks done longer ago than --older-than (and expired idempotency keys)."""
    count = service.purge_done(parse_age(older_than))
    click.echo(f"deleted {count} done task(s) older than {older_than}")
