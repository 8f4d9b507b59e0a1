"""``flask tasks ...`` commands."""

from __future__ import annotations

import re
from datetime import timedelta

import click

from app import Clock, EventBus, UnitOfWork, injected
from app.db import Database
from plugins.tasks.repository import TasksRepository
from plugins.tasks.service import Access, Idempotency, TaskService
from plugins.tasks.settings import TasksSettings

commands = click.Group("tasks", help="Projects and tasks.")
_AGE = re.compile(r"^(\d+)([dh])$")


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
def purge_done(
    older_than: str, database: Database, events: EventBus, clock: Clock, settings: TasksSettings
) -> None:
    """Delete tasks done longer ago than --older-than (and expired idempotency keys)."""
    age = parse_age(older_than)
    session = database.sessions()  # commands run outside requests: a session of their own
    try:
        repository = TasksRepository(session)
        uow = UnitOfWork(session, events)
        idempotency = Idempotency(repository, clock, settings)
        service = TaskService(
            repository, Access(repository), uow, events, clock, idempotency, settings
        )
        count = service.purge_done(age)
    finally:
        session.close()
    click.echo(f"deleted {count} done task(s) older than {older_than}")
