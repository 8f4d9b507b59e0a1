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
``BARE_DATABASE_URL``.

With ``BARE_OBSERVED=1`` (``bench/throughput.py --yardstick observed``) it also does, the plain
way, the work Powerstrip does on every request that a bare app skips, so that the two can be
compared on equal work: a request id (the caller's ``X-Request-ID`` or a new one, answered),
one JSON access line on stdout per request (python-json-logger, the fields of Powerstrip's),
Prometheus counts, latency and in-flight (prometheus-client, multiprocess mode under gunicorn),
and an activity entry written in the insert's transaction. Still no authentication, no rate
limiter, no security headers, no plugin host.

From the repository's root (bench/throughput.py does all of this):

    BARE_DATABASE_URL=sqlite:////tmp/bare.db .venv/bin/flask --app bench.bare.bare_app init-db
    BARE_DATABASE_URL=sqlite:////tmp/bare.db .venv/bin/gunicorn \
        --config bench/bare/gunicorn.conf.py bench.bare.bare_app:app

``init-db`` creates the tables and the project, and prints the project's id.
"""

# flask-smorest ships no type hints (pyproject relaxes the same check for plugins.*).
# mypy: disallow-untyped-decorators=False

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
import marshmallow as ma
from flask import Flask, Response, g, request, url_for
from flask_smorest import Api, Blueprint, abort
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from plugins.health.schemas import LiveSchema
from plugins.tasks.models import Activity, Member, Project, Task
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
    if OBSERVED:  # its activity entry, in the same transaction
        current.flush()
        detail = {"task_id": task.id, "title": task.title}
        current.add(
            Activity(
                project_id=project_id,
                kind="task.created",
                actor="bench",
                detail=detail,
                created_at=now,
            )
        )
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

OBSERVED = os.environ.get("BARE_OBSERVED", "") == "1"
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def observe(observed: Flask) -> None:
    """Request ids, a JSON access line, Prometheus RED metrics: the usual hooks."""
    from prometheus_client import Counter, Gauge, Histogram  # noqa: PLC0415 - after the env
    from pythonjsonlogger.json import JsonFormatter  # noqa: PLC0415

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(process)d %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )
    )
    access = logging.getLogger("bare.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    requests = Counter("bare_http_requests", "Requests", ["route", "method", "status"])
    latency = Histogram(
        "bare_http_request_duration_seconds",
        "Latency",
        ["route", "method"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0),
    )
    in_flight = Gauge("bare_http_requests_in_flight", "In flight", multiprocess_mode="livesum")

    @observed.before_request
    def start() -> None:
        g.started = time.perf_counter()
        sent = request.headers.get("X-Request-ID", "")
        g.request_id = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        in_flight.inc()

    @observed.after_request
    def finish(response: Response) -> Response:
        rule = request.url_rule
        route = rule.rule if rule is not None else "<unmatched>"
        duration = time.perf_counter() - g.started
        requests.labels(route, request.method, f"{response.status_code // 100}xx").inc()
        latency.labels(route, request.method).observe(duration)
        response.headers["X-Request-ID"] = g.request_id
        access.info(
            "request",
            extra={
                "method": request.method,
                "route": route,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 3),
                "remote_addr": request.remote_addr,
                "request_id": g.request_id,
            },
        )
        return response

    @observed.teardown_request
    def end(_exc: BaseException | None) -> None:
        in_flight.dec()


if OBSERVED:
    observe(app)


@app.cli.command("init-db")
@click.option("--owner", default="bench", help="The project's owner and only member.")
def init_db(owner: str) -> None:
    """Create the tasks tables and one project; print the project's id."""
    tables = [Project.__table__, Member.__table__, Task.__table__, Activity.__table__]
    Project.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    with sessions() as current:
        project = Project(name="bench", description="", owner=owner, created_at=now, updated_at=now)
        current.add(project)
        current.flush()
        current.add(Member(project_id=project.id, principal=owner, role="owner", added_at=now))
        current.commit()
        click.echo(project.id)
