"""``powerstrip.testing``: the kit's fixtures, run by pytest as a plugin author's tests run them.

Each test writes a small test suite for the tasks plugin (which needs a ``Directory`` no plugin
of the suite binds without accounts: the kit's fake module supplies it) and runs it in-process
with ``pytester``, under ``filterwarnings = error`` as a plugin's own configuration would set.
"""

from __future__ import annotations

import importlib
import itertools
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

# Imported here, before any inner run: pytester forgets the modules first imported during a
# run, and importing the plugin's models again would define their tables twice.
import plugins.accounts
import plugins.tasks  # noqa: F401
from powerstrip.db import Model
from powerstrip.testing import DATABASE_URL_ENV, TEST_CALLER_HEADER
from tests.services import POSTGRES_URL, require_postgres

pytest_plugins = ["pytester"]

CONFTEST = """
from datetime import UTC, datetime

import pytest
from powerstrip import Clock, Directory

NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class EveryoneExists:
    def exists(self, subject: str) -> bool:
        return True


class FixedClock(Clock):
    def now(self) -> datetime:
        return NOON


def fakes(binder):
    binder.bind(Directory, to=EveryoneExists())  # missing without accounts
    binder.bind(Clock, to=FixedClock())  # the host binds one: this one wins


@pytest.fixture
def powerstrip_plugins():
    return ["tasks"]


@pytest.fixture
def powerstrip_modules():
    return [fakes]
"""

ROLLBACK = """
def test_writes(powerstrip_caller):
    alice = powerstrip_caller("tasks:use", subject="alice")
    assert alice.post("/api/v1/tasks/projects", json={"name": "Kept?"}).status_code == 201
    assert [p["name"] for p in alice.get("/api/v1/tasks/projects").get_json()] == ["Kept?"]


def test_finds_nothing(powerstrip_app, powerstrip_caller):
    alice = powerstrip_caller("tasks:use", subject="alice")
    assert alice.get("/api/v1/tasks/projects").get_json() == []
    with open("databases.txt", "a") as used:
        print(powerstrip_app.extensions["powerstrip.database"].engine.url.database, file=used)
"""


@pytest.fixture
def kit(pytester: pytest.Pytester) -> pytest.Pytester:
    """A plugin's test folder: its pytest configuration and a conftest naming tasks."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n')
    pytester.makeconftest(CONFTEST)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Without hypothesis' plugin: pytester forgets the modules a run imports, and hypothesis
    # would import itself again for every run (a second each).
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args
    )


def test_builds_the_real_app_with_only_the_named_plugins(kit: pytest.Pytester) -> None:
    kit.makepyfile(
        """
        import os
        from pathlib import Path

        import pytest

        def test_default_app(powerstrip_app, powerstrip_client, tmp_path):
            assert not any(name.startswith("POWERSTRIP_") for name in os.environ)
            assert powerstrip_app.testing
            assert Path(powerstrip_app.instance_path).is_relative_to(tmp_path)
            spec = powerstrip_client.get("/api/openapi.json").get_json()
            assert {tag["name"] for tag in spec["tags"]} == {"tasks"}

        def test_named_plugins(powerstrip_make_app):
            client = powerstrip_make_app("health").test_client()
            assert client.get("/api/v1/health/live").status_code == 200
            assert client.get("/api/v1/tasks/projects").status_code == 404

        def test_fake_supplies_a_missing_binding(powerstrip_make_app):
            with pytest.raises(Exception, match="missing DI binding.*Protocols cannot be"):
                powerstrip_make_app("tasks")

        def test_fake_replaces_a_binding(powerstrip_caller):
            alice = powerstrip_caller("tasks:use", subject="alice")
            created = alice.post("/api/v1/tasks/projects", json={"name": "Moon"}).get_json()
            assert created["owner"] == "alice"
            assert created["created_at"] == "2030-01-01T12:00:00+00:00"

        @pytest.mark.parametrize("powerstrip_config", [{"PLUGIN_URL_PREFIX": "/v2"}])
        def test_config_overrides(powerstrip_caller):
            assert powerstrip_caller("tasks:use").get("/v2/tasks/projects").status_code == 200

        @pytest.mark.parametrize("key", ["PLUGINS", "DATABASE_URL"])
        def test_the_kit_keys_are_refused(powerstrip_make_app, key):
            with pytest.raises(ValueError, match=f"^{key}: the kit sets these"):
                powerstrip_make_app("tasks", config={key: "x"})
        """
    )
    run(kit).assert_outcomes(passed=7)


def test_the_plugins_under_test_must_be_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_unnamed(powerstrip_app):
            pass

        class TestNamed:
            @pytest.fixture
            def powerstrip_plugins(self):
                return ["health"]

            def test_defaults(self, powerstrip_client):
                assert powerstrip_client.get("/api/v1/health/live").status_code == 200
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines(["*define a powerstrip_plugins fixture*"])


def test_a_failed_migration_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sqlite3

        def test_unknown_revision(powerstrip_make_app, _powerstrip_databases):
            url = _powerstrip_databases.shared(["health"])
            with sqlite3.connect(url.removeprefix("sqlite:///")) as database:
                database.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
                database.execute("INSERT INTO alembic_version VALUES ('f0f0f0f0f0f0')")
            powerstrip_make_app("health")
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*db upgrade failed*", "*Can't locate revision*f0f0f0f0f0f0*"])


def test_callers_carry_their_scopes(kit: pytest.Pytester) -> None:
    kit.makepyfile(
        f"""
        PROJECTS = "/api/v1/tasks/projects"

        def test_scopes(powerstrip_client, powerstrip_caller):
            anonymous = powerstrip_client.get(PROJECTS)
            assert anonymous.status_code == 401
            denied = powerstrip_caller("other:scope").get(PROJECTS)
            assert denied.status_code == 403
            assert denied.get_json()["detail"] == "This requires the scope(s): tasks:use."
            assert powerstrip_caller("tasks:use").get(PROJECTS).status_code == 200
            assert powerstrip_caller("*").get(PROJECTS).status_code == 200

        def test_subject(powerstrip_caller):
            bob = powerstrip_caller("tasks:use", subject="bob")
            assert bob.post(PROJECTS, json={{"name": "Mine"}}).get_json()["owner"] == "bob"
            assert powerstrip_caller("tasks:use").get(PROJECTS).get_json() == []

        def test_malformed_credential(powerstrip_client):
            refused = powerstrip_client.get(PROJECTS, headers={{"{TEST_CALLER_HEADER}": "{{"}})
            assert refused.status_code == 401
            assert refused.get_json()["detail"] == "Malformed {TEST_CALLER_HEADER} header."

        def test_with_accounts_enabled(powerstrip_make_app):
            from powerstrip.testing import caller_client

            app = powerstrip_make_app("accounts", "tasks")
            carol = caller_client(app, "tasks:use", subject="carol")
            assert carol.post(PROJECTS, json={{"name": "Hers"}}).get_json()["owner"] == "carol"
            assert app.test_client().get(PROJECTS).status_code == 401
        """
    )
    run(kit).assert_outcomes(passed=4)


def test_events_published_and_delivered(kit: pytest.Pytester) -> None:
    kit.makepyfile(
        """
        import pytest
        from powerstrip import EventBus
        from powerstrip.testing import record_events
        from plugins.tasks.contracts import ProjectCreated

        def test_delivered_after_commit(powerstrip_caller, powerstrip_events):
            events = powerstrip_events
            alice = powerstrip_caller("tasks:use", subject="alice")
            created = alice.post("/api/v1/tasks/projects", json={"name": "Moon"}).get_json()
            assert events.of(ProjectCreated) == [
                ProjectCreated(project_id=created["id"], actor="alice", name="Moon")
            ]
            assert events.published == events.delivered
            assert record_events(alice.application) is events
            events.clear()
            assert events.published == events.delivered == []

        def test_dropped_by_a_rollback(powerstrip_make_app):
            app = powerstrip_make_app("health")
            events = record_events(app)
            bus = app.extensions["powerstrip.injector"].get(EventBus)
            with pytest.raises(RuntimeError), bus.deferred():
                bus.publish("rolled back")
                raise RuntimeError
            bus.publish("delivered")
            assert events.published == ["rolled back", "delivered"]
            assert events.delivered == ["delivered"]
        """
    )
    run(kit).assert_outcomes(passed=2)


def test_cli_runner(kit: pytest.Pytester) -> None:
    kit.makepyfile(
        """
        def test_command(powerstrip_runner):
            result = powerstrip_runner.invoke(args=["tasks", "purge-done", "--older-than", "1d"])
            assert result.exit_code == 0, result.output
            assert result.output == "deleted 0 done task(s) older than 1d\\n"

        def test_refused(powerstrip_runner):
            result = powerstrip_runner.invoke(args=["tasks", "purge-done", "--older-than", "x"])
            assert result.exit_code == 2
        """
    )
    run(kit).assert_outcomes(passed=2)


def test_each_test_is_rolled_back(kit: pytest.Pytester) -> None:
    kit.makepyfile(
        ROLLBACK
        + """
def test_apps_of_a_test_share_its_transaction(powerstrip_caller, powerstrip_make_app):
    from conftest import fakes
    from powerstrip.testing import caller_client

    other = powerstrip_make_app("tasks", modules=[fakes], config={"PLUGIN_URL_PREFIX": "/v2"})
    powerstrip_caller("tasks:use").post("/api/v1/tasks/projects", json={"name": "Seen"})
    seen = caller_client(other, "tasks:use").get("/v2/tasks/projects").get_json()
    assert [project["name"] for project in seen] == ["Seen"]


def test_finds_nothing_again(powerstrip_caller):
    assert powerstrip_caller("tasks:use").get("/api/v1/tasks/projects").get_json() == []
"""
    )
    run(kit).assert_outcomes(passed=4)


def test_a_database_of_its_own_for_migrations(kit: pytest.Pytester) -> None:
    kit.makepyfile(
        """
        from conftest import fakes

        def test_migrations(powerstrip_app, powerstrip_make_app):
            app = powerstrip_make_app("tasks", modules=[fakes], migrated=False)
            database = app.extensions["powerstrip.database"].engine.url
            assert database != powerstrip_app.extensions["powerstrip.database"].engine.url
            runner = app.test_cli_runner()
            for command in (["upgrade"], ["check"], ["downgrade", "base"]):
                result = runner.invoke(args=["db", *command])
                assert result.exit_code == 0, result.output
        """
    )
    run(kit).assert_outcomes(passed=1)


def _existing(databases: list[str]) -> list[str]:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname = ANY(:names)"),
                {"names": databases},
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


@pytest.mark.parametrize("through", ["option", "environment"])
def test_on_postgresql(kit: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, through: str) -> None:
    require_postgres()
    kit.makepyfile(
        ROLLBACK
        + """
def test_fresh(powerstrip_make_app):
    from conftest import fakes
    app = powerstrip_make_app("tasks", modules=[fakes], migrated=False)
    with open("databases.txt", "a") as used:
        print(app.extensions["powerstrip.database"].engine.url.database, file=used)
"""
    )
    if through == "option":
        result = run(kit, "--powerstrip-database-url", POSTGRES_URL)
    else:
        monkeypatch.setenv(DATABASE_URL_ENV, POSTGRES_URL)
        result = run(kit)
    result.assert_outcomes(passed=3)
    used = (kit.path / "databases.txt").read_text().split()
    assert len(used) == 2
    assert all(name.startswith("powerstrip_kit_") for name in used)
    assert _existing(used) == []  # dropped at the end


def test_a_database_url_must_name_postgresql(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--powerstrip-database-url", "sqlite:///x.db")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*must be a PostgreSQL URL*"])


def test_importing_the_kit_loads_nothing_of_the_host() -> None:
    code = "import json, sys, powerstrip.testing; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
    )
    roots = {name.split(".")[0] for name in loaded}
    assert roots.isdisjoint({"app", "plugins", "alembic", "flask_migrate", "psycopg"})
    assert "flask.testing" not in loaded


# A plugin that breaks each promise the conformance suite checks, installed in the test folder
# (a package and its dist-info: found through its entry point, as an installed one is).
BROKEN_PLUGIN = {
    "broken_kit/__init__.py": """
from dataclasses import dataclass
from pathlib import Path

import flask
import marshmallow as ma
from flask_smorest import Blueprint
from powerstrip import Model, Plugin, Problem
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

blp = Blueprint("broken", __name__)


class Note(Model):
    __tablename__ = "broken_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))
    extra: Mapped[str] = mapped_column(String(10))  # no migration adds it: db check fails


class NoteSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    text = ma.fields.String(required=True)
    tags = ma.fields.Raw(required=True)  # untyped: the view trusts it is a list
    color = ma.fields.Raw(metadata={"type": "string"})  # documented a string, takes anything


@blp.route("/notes", methods=["POST"])
@blp.arguments(NoteSchema)
@blp.response(201, NoteSchema)
def create_note(body):
    \"\"\"The operation that 500s on a bad body.\"\"\"
    return {"text": body["text"], "tags": ", ".join(body["tags"])}


@blp.route("/notes/<int:note_id>")
@blp.response(200, NoteSchema)
def note(note_id):
    \"\"\"A 404 it does not document.\"\"\"
    raise Problem(404, "No such note.")


@blp.route("/notes/<int:note_id>", methods=["DELETE"])
def remove_note(note_id):
    \"\"\"An error that is not a problem.\"\"\"
    return flask.Response("gone", status=410, mimetype="text/plain")


@dataclass(frozen=True)
class BrokenSettings:
    API_TOKEN: str
    WEBHOOK_SECRET: str | None


class Settings(ma.Schema):
    API_TOKEN = ma.fields.String(load_default="tok-3f9a1c")  # looks secret, not marked
    WEBHOOK_SECRET = ma.fields.String(load_default=None, allow_none=True, metadata={"secret": True})

    @ma.post_load
    def build(self, data, **_):
        return BrokenSettings(**data)


def raw():
    return "not documented"


# A route registered past flask-smorest: served, but not in the OpenAPI document.
flask.Blueprint.add_url_rule(blp, "/raw", "raw", raw)

needy = Plugin(name="needy", version="0.1.0", requires=("ghost",))

plugin = Plugin(
    name="broken",
    version="0.1.0",
    description="Breaks every promise the conformance suite checks.",
    blueprints=[blp],
    settings=Settings,
    migrations=Path(__file__).parent / "migrations",
)
""",
    "broken_kit/migrations/b0b0b0b0b0b0_create_notes.py": '''
"""create notes

Revision ID: b0b0b0b0b0b0
Revises:
Create Date: 2026-11-28 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b0b0b0b0b0b0"
down_revision = None
branch_labels = ("broken",)
depends_on = None


def upgrade():
    op.create_table(
        "broken_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broken_notes")),
        sqlite_autoincrement=True,
    )
    op.create_table("orphans", sa.Column("id", sa.Integer(), primary_key=True))  # unprefixed


def downgrade():
    op.drop_table("orphans")  # and forgets broken_notes
''',
    "broken_kit-0.1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: broken-kit\n"
    "Version: 0.1.0\n",
    "broken_kit-0.1.0.dist-info/entry_points.txt": "[powerstrip.plugins]\n"
    "broken = broken_kit:plugin\nneedy = broken_kit:needy\nblueprint = broken_kit:blp\n"
    "failing = failing_kit:plugin\n",
    "failing_kit/__init__.py": """
from pathlib import Path

from powerstrip import Plugin

plugin = Plugin(name="failing", version="0.1.0", migrations=Path(__file__).parent / "migrations")
""",
    "failing_kit/migrations/f0f0f0f0f0f0_boom.py": """
revision = "f0f0f0f0f0f0"
down_revision = None
branch_labels = ("failing",)
depends_on = None


def upgrade():
    raise RuntimeError("boom")


def downgrade():
    pass
""",
}


REFUSALS = r"""
import pytest


def test_not_installed(plugin_conformance):
    with pytest.raises(pytest.fail.Exception, match="^no plugin 'nosuch' is installed"):
        plugin_conformance("nosuch")


def test_not_a_plugin(plugin_conformance):
    with pytest.raises(pytest.fail.Exception, match="entry point is not a powerstrip.Plugin"):
        plugin_conformance("blueprint")


def test_invalid_settings(plugin_conformance):
    expected = r"\[loading\] does not load in strict mode: plugin 'broken': invalid settings"
    with pytest.raises(pytest.fail.Exception, match=expected):
        plugin_conformance("broken", config={"broken": {"API_TOKEN": 5}})


def test_failing_migration(plugin_conformance):
    expected = r"\[migrations\] upgrade from an empty database failed: Error: boom$"
    with pytest.raises(pytest.fail.Exception, match=expected) as failed:
        plugin_conformance("failing")
    assert "0 requests" in str(failed.value)  # nothing to probe without a database


def test_missing_requirement(plugin_conformance):
    expected = r"\[loading\] does not load in strict mode: plugin 'ghost': listed in PLUGINS"
    with pytest.raises(pytest.fail.Exception, match=expected):
        plugin_conformance("needy", plugins=["ghost"])
"""


@pytest.fixture
def broken(pytester: pytest.Pytester) -> Iterator[pytest.Pytester]:
    """A test folder with the broken plugin installed; its tables leave the shared metadata."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n')
    for name, source in BROKEN_PLUGIN.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    pytester.syspathinsert()
    importlib.invalidate_caches()
    yield pytester
    for table in ("broken_notes", "orphans"):
        if table in Model.metadata.tables:
            Model.metadata.remove(Model.metadata.tables[table])


def test_conformance_lists_every_broken_promise(broken: pytest.Pytester) -> None:
    broken.makepyfile(
        """
        def test_conformance(plugin_conformance):
            plugin_conformance("broken")
        """
    )
    # One run (a plugin's models are defined once in a process): the suite's refusals too.
    broken.makepyfile(test_refusals=REFUSALS)
    result = run(broken)
    result.assert_outcomes(failed=1, passed=5)
    output = result.stdout.str()
    assert "plugin 'broken' fails 13 conformance check(s)" in output, output
    # The report's lines, once: pytest repeats the message in its summary when CI is set.
    start = next(i for i, line in enumerate(result.outlines) if "plugin 'broken' fails" in line)
    failures = list(
        itertools.takewhile(lambda line: line.startswith("  - ["), result.outlines[start + 1 :])
    )
    failures = [line[4:] for line in failures]
    expected = [
        "[tables] the migrations create 'orphans', named for no enabled plugin",
        "[migrations] the models agree with the migrations (db check) failed: Error: New upgrade "
        "operations detected: [('add_column', None, 'broken_notes', Column('extra'",
        "[migrations] downgrade broken@base leaves broken_notes",
        "[migrations] upgrade again after the downgrade failed: OperationalError: "
        "(sqlite3.OperationalError) table broken_notes already exists at ",
        "[bad input] POST /api/v1/broken/notes: field 'tags' = 12345: answered 500 (TypeError: "
        "can only join an iterable at ",
        "[bad input] POST /api/v1/broken/notes: field 'tags' = true: answered 500 (TypeError: ",
        "[documentation] GET /api/v1/broken/notes/{note_id}: unknown path parameters "
        "(/api/v1/broken/notes/987654321): answered 404, which the operation does not document",
        "[bad input] DELETE /api/v1/broken/notes/{note_id}: unknown path parameters "
        "(/api/v1/broken/notes/987654321): answered 410 as text/plain, not "
        "application/problem+json",
        "[documentation] DELETE /api/v1/broken/notes/{note_id}: unknown path parameters "
        "(/api/v1/broken/notes/987654321): answered 410, which the operation does not document",
        "[settings] setting API_TOKEN looks secret: mark it metadata={'secret': True}",
        "[field bounds] POST /api/v1/broken/notes: field 'text' allows any number of characters; "
        "column broken_notes.text holds 100 (declare maxLength <= 100)",
        "[documentation] GET /api/v1/broken/raw is not in the OpenAPI document",
        "[bad input] POST /api/v1/broken/notes: field 'color' = 12345: answered 201: a value of "
        "the wrong type was accepted",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in failures), (start, failures)
    assert len(failures) == len(expected), failures
