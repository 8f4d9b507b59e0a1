"""``@injected`` commands: the services views use, one unit of work, events after commit."""

from __future__ import annotations

import sys

from sqlalchemy import func, select

from powerstrip import Model
from tests.conftest import AppFactory
from tests.plugin_fixtures import Installer, plugin_source

NOTES = """
from dataclasses import dataclass
from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column
from powerstrip import EventBus, Problem, UnitOfWork, injected
from powerstrip import Model


class Note(Model):
    __tablename__ = "{name}_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(50))


@dataclass(frozen=True)
class Noted:
    text: str


class Notes:
    @inject
    def __init__(self, session: Session, uow: UnitOfWork, events: EventBus) -> None:
        self.session, self.uow, self.events = session, uow, events

    def add(self, text: str) -> None:
        with self.uow:
            self.session.add(Note(text=text))
            self.session.flush()
            self.events.publish(Noted(text))


HEARD = []
commands = click.Group("{name}")


@commands.command("add")
@click.argument("text")
@click.option("--fail", is_flag=True)
@injected
def add(text: str, fail: bool, notes: Notes, session: Session) -> None:
    notes.add(text)
    assert notes.session is session  # one scope: the service and the command share it
    click.echo(f"delivered so far: {{len(HEARD)}}")
    if fail:
        raise Problem(409, "Refused.", errors={{"text": ["Taken."]}})


def setup(context):
    context.events.subscribe(Noted, HEARD.append)
"""


def test_a_command_is_one_unit_of_work_with_events_after_its_commit(
    installer: Installer, make_app: AppFactory
) -> None:
    package = installer.install(
        "cmdscope", plugin_source("cmdscope", NOTES, commands="commands", setup="setup")
    )
    app = make_app()
    engine = app.extensions["powerstrip.database"].engine
    Model.metadata.create_all(engine, tables=[Model.metadata.tables["cmdscope_notes"]])
    heard = sys.modules[package].HEARD
    runner = app.test_cli_runner()

    def count() -> int:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    select(func.count()).select_from(Model.metadata.tables["cmdscope_notes"])
                )
                or 0
            )

    done = runner.invoke(args=["cmdscope", "add", "one"])
    assert done.exit_code == 0, done.output
    assert done.output == "delivered so far: 0\n"  # the event waited for the command's commit
    assert [event.text for event in heard] == ["one"]
    assert count() == 1

    refused = runner.invoke(args=["cmdscope", "add", "two", "--fail"])
    assert refused.exit_code == 1
    assert refused.output.splitlines()[-1] == "Error: Refused. text: Taken."
    assert count() == 1  # rolled back
    assert [event.text for event in heard] == ["one"]  # and its event dropped
    assert engine.pool.checkedout() == 0  # the command's session was closed
