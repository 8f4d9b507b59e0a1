"""The yardstick of bench/throughput.py: a bare flask-smorest app serving the tasks routes.

Plain Flask and flask-smorest, one Blueprint, a SQLAlchemy 2 engine and a session per request
(closed at teardown). It uses the tasks plugin's models and marshmallow schemas, so the ORM and
serialisation work is Powerstrip's own; it has no authentication, no rate limiter, no plugin host,
no access log. Its paths are Powerstrip's, so the requests are the same (but for credentials):

- ``GET /api/v1/health/live``: ``{"status": "ok"}`` through the health plugin's LiveSchema;
- ``GET /api/v1/tasks/projects/<id>/tasks?page_size=20``: the project's first tasks by id
  (``LIMIT page_size + 1``, the query of Powerstrip's first keyset page);
- ``POST /api/v1/tasks/projects/<id>/tasks``: TaskInSchema, insert, commit, TaskSchema, 201;
- ``GET /api/v1/tasks/projects/<id>/tasks/<task_id>``: one task with its ETag, derived from the
  row's version as Powerstrip's ``@conditional`` derives it.

SQLite gets Powerstrip's pragmas (foreign keys, WAL, busy timeout). The database is
``BARE_DATABASE_URL``. From the repository's root (bench/throughput.py does all of this):

    BARE_DATABASE_URL=sqlite:////tmp/bare.db .venv/bin/flask --app bench.bare.bare_app init-db
    BARE_DATABASE_URL=sqlite:////tmp/bare.db .venv/bin/gunicorn \
        --config bench/bare/gunicorn.conf.py bench.bare.bare_app:app

``init-db`` creates the tables and the project, and prints the project's id.
"""

# flask-smorest ships no type hints (pyproject relaxes the same check for plugins.*).
# mypy: disallow-untyped-decorators=False

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
import marshmallow as ma
from flask import Flask, g, url_for
from flask_smorest import Api, Blueprint, abort
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from plugins.health.schemas import LiveSchema
from plugins.tasks.models import Member, Project, Task
from plugins.tasks.schemas import TaskInSchema, TaskSchema


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine with SQLAlchemy's default pool; SQLite gets Powerstrip's pragmas."""
    if not url.startswith("sqlite"):
        return create_engine(url)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


engine = make_engine(os.environ.get("BARE_DATABASE_URL", "sqlite:///bare.db"))
sessions = sessionmaker(bind=engine, expire_on_commit=False)

app = Flask("bare")
app.config.update(API_TITLE="bare", API_VERSION="1", OPENAPI_VERSION="3.1.0")
api = Api(app)
blueprint = Blueprint("bare", __name__, url_prefix="/api/v1")


def session() -> Session:
    """The request's session, opened on first use."""
    if "session" not in g:
        g.session = sessions()
    current: Session = g.session
    return current


@app.teardown_appcontext
def close_session(_exc: BaseException | None) -> None:
    """Close the request's session (rolling back anything uncommitted)."""
    current = g.pop("session", None)
    if current is not None:
        current.close()


def etag(task: Task) -> str:
    """The quoted entity tag of a task: Powerstrip's (table, key and version, hashed)."""
    digest = hashlib.blake2b(f"tasks_tasks:{task.id}".encode(), digest_size=6).hexdigest()
    return f'"{digest}-{task.version}"'


class PageSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # Powerstrip's `cursor=`

    page_size = ma.fields.Integer(load_default=20, validate=ma.validate.Range(1, 100))


@blueprint.route("/health/live")
@blueprint.response(200, LiveSchema)
def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@blueprint.route("/tasks/projects/<int:project_id>/tasks", methods=["GET"])
@blueprint.arguments(PageSchema, location="query")
@blueprint.response(200, TaskSchema(many=True))
def list_tasks(args: dict[str, Any], project_id: int) -> Sequence[Task]:
    """The project's first tasks by id."""
    size = args["page_size"]
    query = select(Task).where(Task.project_id == project_id).order_by(Task.id).limit(size + 1)
    return session().scalars(query).all()[:size]


@blueprint.route("/tasks/projects/<int:project_id>/tasks", methods=["POST"])
@blueprint.arguments(TaskInSchema)
@blueprint.response(201, TaskSchema)
def create_task(body: dict[str, Any], project_id: int) -> tuple[Task, dict[str, str]]:
    """Insert a validated task."""
    now = datetime.now(UTC)
    task = Task(project_id=project_id, created_at=now, updated_at=now, **body)
    if "labels" in body:
        task.labels = sorted(set(body["labels"]))
        task.label_index = "," + "".join(f"{label}," for label in task.labels)
    if task.status == "done":
        task.completed_at = now
    current = session()
    current.add(task)
    current.commit()
    location = url_for("bare.get_task", project_id=project_id, task_id=task.id)
    return task, {"Location": location, "ETag": etag(task)}


@blueprint.route("/tasks/projects/<int:project_id>/tasks/<int:task_id>", methods=["GET"])
@blueprint.response(200, TaskSchema)
def get_task(project_id: int, task_id: int) -> tuple[Task, dict[str, str]]:
    """One task, with its ETag."""
    task = session().get(Task, task_id)
    if task is None or task.project_id != project_id:
        abort(404)
    assert task is not None  # abort raises
    return task, {"ETag": etag(task), "Cache-Control": "private, no-cache"}


api.register_blueprint(blueprint)


@app.cli.command("init-db")
@click.option("--owner", default="bench", help="The project's owner and only member.")
def init_db(owner: str) -> None:
    """Create the tasks tables and one project; print the project's id."""
    tables = [Project.__table__, Member.__table__, Task.__table__]
    Project.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    with sessions() as current:
        project = Project(name="bench", description="", owner=owner, created_at=now, updated_at=now)
        current.add(project)
        current.flush()
        current.add(Member(project_id=project.id, principal=owner, role="owner", added_at=now))
        current.commit()
        click.echo(project.id)
