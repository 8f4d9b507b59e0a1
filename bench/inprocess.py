"""In-process cost of Powerstrip's requests: CPU µs per request, SQL statements, and where the
CPU goes, without HTTP, gunicorn or wrk in the way.

The app is built as `make run` builds it (development settings, metrics on, the JSON access
log at INFO written to /dev/null), with the default rate limit raised so the limiter runs but
never refuses. It is seeded through its own API (an admin, a bearer token, an API key, one
project of 200 tasks), then each scenario runs through Flask's test client:

- ``live``: ``GET /api/v1/health/live``;
- ``list``: ``GET .../projects/<id>/tasks?page_size=20&cursor=`` (the first keyset page, the
  query bench/throughput.py's bare app runs) with the bearer token;
- ``list-key``: the same with the API key;
- ``insert``: ``POST .../projects/<id>/tasks``;
- ``get-etag``: ``GET .../tasks/<id>``.

For each: CPU µs per request (``time.process_time``, every thread of the process), the least
of ``--batches`` short batches of ``--requests``: on a virtual machine the CPU's speed swings
up to 2x within a second, and the least of many short batches is what stays comparable from
one run to the next; function calls per request (counted, so the same in every run: the
measure to compare two versions by); SQL statements per request; and, with ``--profile``, a
cProfile of one batch broken down into categories (``CATEGORIES``): each
function's own time goes to the category of its module; a C function's (a driver call, a
``dict`` method) to its callers' categories, in proportion.

Usage::

    .venv/bin/python bench/inprocess.py [--database sqlite|postgresql] [--requests 300]
        [--batches 5] [--profile] [--scenarios list,insert] [--json out.json] [--bare]

``--bare``: the same figures for the bare app of bench/bare/ (the yardstick of
bench/throughput.py: no authentication, limiter, access log or metrics), on SQLite.

PostgreSQL: a temporary database on 127.0.0.1:5432 (user postgres), dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402 - after the path

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
EMAIL, PASSWORD = "bench@example.com", "Correct-Horse-Battery-9"
TASKS = 200

# Where a function's own time goes, by the path of its module (first match wins).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("test client (not in production)", ("/werkzeug/test.py", "/flask/testing.py")),
    ("injection", ("/flask_injector", "/injector/")),
    ("limiter", ("/flask_limiter/", "/limits/")),
    ("auth", ("/app/auth.py", "/powerstrip/auth", "/plugins/accounts/", "/jwt/", "/hmac.py")),
    ("tasks plugin", ("/plugins/tasks/",)),
    ("webargs parsing", ("/webargs/",)),
    ("marshmallow", ("/marshmallow/",)),
    ("sql driver", ("sqlite3", "psycopg")),
    ("sqlalchemy", ("/sqlalchemy/",)),
    ("logging", ("/logging/", "/pythonjsonlogger/", "/app/logs.py")),
    ("metrics", ("/prometheus_client/", "/app/metrics.py")),
    ("tracing", ("/opentelemetry/", "/app/tracing.py")),
    ("input guard", ("/app/inputs.py",)),
    ("other host hooks", ("/app/", "/powerstrip/")),
    ("flask-smorest", ("/flask_smorest/",)),
    ("flask/werkzeug", ("/flask/", "/werkzeug/")),
    ("json", ("/json/", "orjson")),
)


def category(filename: str) -> str | None:
    for name, markers in CATEGORIES:
        if any(marker in filename for marker in markers):
            return name
    return None


def wrapper(function: Any) -> bool:
    """WSGI middleware around the whole app (``LastResort.__call__``): what runs under it is
    not its doing."""
    filename, _, name = function
    return name == "__call__" and origin(filename) is not None


def origin(filename: str) -> str | None:
    """The host or plugin module at ``filename`` (``plugins/tasks/access.py``), else None."""
    for root in ("app", "plugins", "powerstrip"):
        marker = f"{ROOT}/{root}/"
        if filename.startswith(marker):
            return f"{root}/{filename[len(marker) :]}"
    return None


def attribute(
    profile: cProfile.Profile,
    classify: Callable[[str], str | None],
    unclaimed: str,
    transparent: Callable[[Any], bool] = lambda _: False,
) -> dict[str, float]:
    """Own CPU time (seconds) by the name ``classify`` gives a function's file (or, for a C
    function, its name).

    A function it gives none passes its time on to its callers in proportion to what each
    call cost, up to the first caller it names (``unclaimed`` when none): with categories,
    ``inspect.signature`` called by the injector counts as injection.
    """
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    resolved: dict[Any, dict[str, float]] = {}

    def shares(function: Any, seen: frozenset[Any]) -> dict[str, float]:
        if function in resolved:
            return resolved[function]
        filename, _, name = function
        named = classify(name if filename == "~" else filename)
        if seen and transparent(function):  # a callee's time passes through it
            named = None
        callers = stats[function][4] if function in stats else {}
        if named is not None:
            result = {named: 1.0}
        elif not callers or function in seen:
            result = {unclaimed: 1.0}
        else:
            result = {}
            spent = sum(entry[2] for entry in callers.values()) or 1.0
            for caller, entry in callers.items():
                for key, share in shares(caller, seen | {function}).items():
                    result[key] = result.get(key, 0.0) + share * entry[2] / spent
        if not seen:
            resolved[function] = result
        return result

    totals: Counter[str] = Counter()
    for function, (_, _, own, _, _) in stats.items():
        for key, share in shares(function, frozenset()).items():
            totals[key] += own * share
    return dict(totals)


def percentages(seconds: dict[str, float], top: int | None = None) -> dict[str, float]:
    total = sum(seconds.values()) or 1.0
    ranked = sorted(seconds.items(), key=lambda item: -item[1])
    return {name: round(100 * spent / total, 1) for name, spent in ranked[:top]}


class Bench:
    """One seeded app and the requests of each scenario."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.statements = 0
        engine = app.extensions["powerstrip.database"].engine
        event.listen(engine, "before_cursor_execute", self._count)
        self.bearer = {"Authorization": f"Bearer {self._login()}"}
        key = self._ok(
            self.client.post(
                "/api/v1/accounts/api-keys",
                json={"name": "bench", "scopes": ["tasks:use"]},
                headers=self.bearer,
            )
        )["key"]
        self.api_key = {"X-API-Key": key}
        project = self._ok(
            self.client.post("/api/v1/tasks/projects", json={"name": "bench"}, headers=self.bearer)
        )
        self.tasks = f"/api/v1/tasks/projects/{project['id']}/tasks"
        for number in range(TASKS):
            task = self._ok(
                self.client.post(self.tasks, json=self.body(number), headers=self.bearer)
            )
        self.task = f"{self.tasks}/{task['id']}"
        self.inserted = TASKS

    def _count(self, *_: Any) -> None:
        self.statements += 1

    def _login(self) -> str:
        answer = self.client.post(
            "/api/v1/accounts/tokens", json={"email": EMAIL, "password": PASSWORD}
        )
        return str(self._ok(answer)["access_token"])

    @staticmethod
    def _ok(response: Any) -> Any:
        assert 200 <= response.status_code < 300, (response.status_code, response.get_data())
        return response.get_json()

    @staticmethod
    def body(number: int) -> dict[str, Any]:
        return {
            "title": f"Task {number}",
            "description": "Benchmark task",
            "priority": number % 5 + 1,
            "labels": ["bench", f"l{number % 7}"],
        }

    def scenarios(self) -> dict[str, Callable[[], int]]:
        client = self.client

        def live() -> int:
            return client.get("/api/v1/health/live").status_code

        def list_bearer() -> int:
            return client.get(f"{self.tasks}?page_size=20&cursor=", headers=self.bearer).status_code

        def list_key() -> int:
            return client.get(
                f"{self.tasks}?page_size=20&cursor=", headers=self.api_key
            ).status_code

        def insert() -> int:
            self.inserted += 1
            body = self.body(self.inserted)
            return client.post(self.tasks, json=body, headers=self.bearer).status_code

        def get_etag() -> int:
            return client.get(self.task, headers=self.bearer).status_code

        return {
            "live": live,
            "list": list_bearer,
            "list-key": list_key,
            "insert": insert,
            "get-etag": get_etag,
        }


class BareBench:
    """The bare app of bench/bare/ (the yardstick of bench/throughput.py), seeded alike: its
    scenarios but ``list-key`` (it has no credentials)."""

    def __init__(self, instance: Path) -> None:
        os.environ["BARE_DATABASE_URL"] = f"sqlite:///{instance / 'bare.db'}"
        from bench.bare import bare_app  # noqa: PLC0415 - reads BARE_DATABASE_URL

        self.app: Flask = bare_app.app
        self.client: FlaskClient = self.app.test_client()
        self.statements = 0
        event.listen(bare_app.engine, "before_cursor_execute", self._count)
        created = self.app.test_cli_runner().invoke(args=["init-db"])
        assert created.exit_code == 0, created.output
        self.tasks = f"/api/v1/tasks/projects/{int(created.output)}/tasks"
        for number in range(TASKS):
            task = Bench._ok(self.client.post(self.tasks, json=Bench.body(number)))
        self.task = f"{self.tasks}/{task['id']}"
        self.inserted = TASKS

    def _count(self, *_: Any) -> None:
        self.statements += 1

    def scenarios(self) -> dict[str, Callable[[], int]]:
        client = self.client

        def insert() -> int:
            self.inserted += 1
            return client.post(self.tasks, json=Bench.body(self.inserted)).status_code

        return {
            "live": lambda: client.get("/api/v1/health/live").status_code,
            "list": lambda: client.get(f"{self.tasks}?page_size=20&cursor=").status_code,
            "insert": insert,
            "get-etag": lambda: client.get(self.task).status_code,
        }


def measure(run: Callable[[], int], requests: int, bench: Bench | BareBench) -> tuple[float, float]:
    """(CPU µs per request, SQL statements per request) of one batch; every answer 2xx."""
    before = bench.statements
    started = time.process_time()
    for _ in range(requests):
        status = run()
        assert 200 <= status < 300, status
    cpu = (time.process_time() - started) / requests * 1e6
    return cpu, (bench.statements - before) / requests


def calls(run: Callable[[], int], requests: int = 20) -> float:
    """Python and C function calls per request: unlike CPU time on a virtual machine, the same
    from one run to the next, so a change of a few percent shows."""
    counted = 0

    def count(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal counted
        if event in ("call", "c_call"):
            counted += 1

    threading.setprofile(count)  # threads the requests start (the limiter's timers)
    sys.setprofile(count)
    try:
        for _ in range(requests):
            run()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return counted / requests


@contextlib.contextmanager
def database(kind: str, instance: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{instance / 'bench.db'}"
        return
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The app's log lines (JSON on stdout, written as in production) go to /dev/null."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(null)
        os.close(saved)


def build(instance: Path, url: str) -> Flask:
    app = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "ENVIRONMENT": "development",
            "DATABASE_URL": url,
            "RATELIMIT_DEFAULT": ["1000000/minute"],
            "LOG_LEVEL": "INFO",
        }
    )
    runner = app.test_cli_runner()
    upgraded = runner.invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    created = runner.invoke(
        args=["accounts", "create-admin", "--email", EMAIL, "--password", PASSWORD]
    )
    assert created.exit_code == 0, created.output
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--bare", action="store_true", help="the bare app of bench/bare/ instead (SQLite only)"
    )
    parser.add_argument("--requests", type=int, default=25, help="requests per batch")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--scenarios", default="live,list,list-key,insert,get-etag")
    parser.add_argument("--profile", action="store_true", help="break one batch down")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if args.bare and args.database != "sqlite":
        parser.error("--bare runs on SQLite only")
    results: dict[str, Any] = {"database": args.database, "scenarios": {}}
    with (
        tempfile.TemporaryDirectory() as folder,
        database(args.database, Path(folder)) as url,
        quiet_stdout(),
    ):
        bench: Bench | BareBench = (
            BareBench(Path(folder)) if args.bare else Bench(build(Path(folder), url))
        )
        scenarios = bench.scenarios()
        names = [name for name in args.scenarios.split(",") if name in scenarios]
        for name in names:
            run = scenarios[name]
            measure(run, 50, bench)  # warm up
            batches = [measure(run, args.requests, bench) for _ in range(args.batches)]
            entry: dict[str, Any] = {
                "cpu_us": min(cpu for cpu, _ in batches),  # noise only ever adds
                "statements": batches[0][1],
                "calls": calls(run),
            }
            if args.profile:
                profile = cProfile.Profile(time.process_time)
                profile.enable()
                measure(run, 200, bench)
                profile.disable()
                entry["profile"] = percentages(attribute(profile, category, "other"))
                entry["origins"] = percentages(
                    attribute(profile, origin, "(frameworks)", wrapper), 15
                )
            results["scenarios"][name] = entry
        if not args.bare:
            bench.app.extensions["powerstrip.database"].engine.dispose()
    which = "the bare app" if args.bare else "Powerstrip"
    print(
        f"\nIn-process cost of {which} on {args.database} "
        f"({args.requests} requests x {args.batches}):\n"
    )
    print("| scenario | CPU µs/request | function calls/request | SQL statements/request |")
    print("|---|---:|---:|---:|")
    for name, entry in results["scenarios"].items():
        print(
            f"| {name} | {entry['cpu_us']:,.0f} | {entry['calls']:,.0f} | {entry['statements']:g} |"
        )
    if args.profile:
        for name, entry in results["scenarios"].items():
            print(f"\nWhere `{name}` spends its CPU (share of profiled own time, %):\n")
            print("| category | % |")
            print("|---|---:|")
            for category_name, share in entry["profile"].items():
                print(f"| {category_name} | {share} |")
            print(f"\n`{name}` by the host or plugin module whose call spent it (%):\n")
            print("| module | % |")
            print("|---|---:|")
            for module, share in entry["origins"].items():
                print(f"| {module} | {share} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
