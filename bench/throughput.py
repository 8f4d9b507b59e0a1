"""Throughput benchmark: Powerstrip under gunicorn beside a bare flask-smorest app, driven by wrk.

It starts Powerstrip as `make run` does (`flask --app wsgi db upgrade`, then
`gunicorn --config gunicorn.conf.py wsgi:app`, ENVIRONMENT development from a fresh temporary
instance folder) and the bare app of bench/bare/ (the tasks plugin's models and schemas, no auth,
no limiter), both with 2 gthread workers of 4 threads (GUNICORN_WORKER_CLASS=sync in this
environment: sync workers, for both). It seeds both with the same 200 tasks in
one project, then runs wrk in interleaved rounds (bare, powerstrip, bare, powerstrip...) for:

- live: `GET /api/v1/health/live` (bare: the same trivial JSON route);
- list: 20 tasks, `GET /api/v1/tasks/projects/<id>/tasks?page_size=20&cursor=` with a bearer
  token (`cursor=`: the first keyset page, one `ORDER BY id LIMIT 21` query and no COUNT, which
  the bare app runs too; without it Powerstrip pages by number, COUNT plus OFFSET);
- list-key: the same list with an API key (Powerstrip only: the bare figures are its `list`);
- insert: `POST /api/v1/tasks/projects/<id>/tasks`, a validated JSON body (wrk.lua); Powerstrip
  also checks the caller's membership and writes the activity feed's row in the same transaction;
- get-etag: `GET /api/v1/tasks/projects/<id>/tasks/<task_id>`, one task with its ETag.

on SQLite (a fresh file in each app's temporary folder) and PostgreSQL (a fresh `bench_<random>`
database per app on --postgres-url's server, dropped at the end; skipped with a message when the
server is unreachable). For each database it prints a Markdown table of medians over rounds:
req/s, p50 and p99 latency, server CPU per request (utime + stime of the gunicorn workers from
/proc/<pid>/stat around each wrk run, divided by the requests wrk completed) and the ratio of each
Powerstrip figure to the bare app's, with the least and the greatest of the rounds' own req/s
ratios (how far apart the rounds were: a change smaller than that spread is not shown by one
run); then each app's memory per worker (VmRSS and PSS after the
run, medians, and the master's and workers' PSS over the workers: Powerstrip preloads the app in
the master, whose pages its workers share, which RSS counts whole in each worker and PSS shares
out) and its startup time (launching gunicorn to the first 200 of the live route, median over
--starts starts). A row with any answer of status 400 or above, or a socket error, counted by
wrk is flagged: a benchmark of 429s is worthless.

Powerstrip's default rate limit (300/minute per client address) would answer 429 to wrk from
one address: the benchmark sets POWERSTRIP_RATELIMIT_DEFAULT='["1000000/minute"]' so the limiter
still runs (its cost is part of the figures) but never refuses. Access tokens are made to live
1440 minutes (the maximum) so that one login outlives the run.

``--baseline DIR`` adds a third app to the same interleaved rounds: Powerstrip as checked out
in DIR (an earlier commit: ``git worktree add --detach DIR <commit>``), run with this checkout's
virtual environment (given more than once: ``baseline1``, ``baseline2``... in the order given),
so that a change's before and after come from one run on one machine (two runs differ by more
than most changes: the machine's speed swings). DIR needs no virtual environment of its own; do
not run make in it with this one linked in (make would install DIR editable into it).

``--yardstick observed`` measures against the bare app doing, the plain way, the work Powerstrip
does on every request beyond the bare app's (request ids, a JSON access line, Prometheus
metrics, the insert's activity entry: bench/bare/bare_app.py). Issue 14's targets are against
the plain one (the default).

Usage: .venv/bin/python bench/throughput.py [--rounds 3] [--duration 10] [--connections 32]
       [--threads 2] [--warmup 2] [--starts 3] [--databases sqlite,postgresql] [--json FILE]
       [--baseline DIR ...] [--yardstick plain|observed]
or `make bench BENCH_ARGS="--rounds 1 --duration 3"`. Needs wrk (Debian/Ubuntu: sudo apt-get
install wrk).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
WORKERS = 2
THREADS = 4
STARTUP_SECONDS = 60
SEED_TASKS = 200
LIVE = "/api/v1/health/live"
SCENARIOS = ("live", "list", "list-key", "insert", "get-etag")
APPS = ("bare", "powerstrip")  # and "baseline" (or baseline1, baseline2...) with --baseline
METRICS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")  # medians over rounds, and ratios
DATABASES = ("sqlite", "postgresql")
CLOCK_TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")
INSERT_BODY = {
    "title": "Inserted by wrk",
    "description": "A task the benchmark inserts, again and again.",
    "priority": 2,
    "due_date": "2030-06-30",
    "assignee": "user-1",
    "labels": ["wrk", "bench"],
}


def seed_body(number: int) -> dict[str, Any]:
    """The body of the seeded task ``number``: the same for both apps."""
    return {
        "title": f"Seeded task {number:03d}",
        "description": f"Task {number} of the benchmark's project, with a sentence of text.",
        "status": ("open", "in_progress", "done")[number % 3],
        "priority": 1 + number % 5,
        "due_date": f"2030-01-{1 + number % 28:02d}" if number % 2 else None,
        "assignee": f"user-{number % 4}" if number % 3 else None,
        "labels": ["bench", f"group-{number % 7}"],
    }


@dataclass(frozen=True)
class Request:
    """The one request wrk repeats in a scenario, and the status it must answer."""

    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    status: int = 200


@dataclass
class Server:
    """A running gunicorn (its master) and the requests of each scenario against it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    requests: dict[str, Request] = field(default_factory=dict)

    def workers(self) -> list[int]:
        """The pids of the master's children (gunicorn's workers)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)


def say(message: str) -> None:
    """Progress, on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports, free now (held open together: never one port twice)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30,
) -> tuple[int, Any]:
    """One request on a new connection: its status and its JSON body (or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        connection.request(method, path, data, sent)
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")
    finally:
        connection.close()


def expect(server: Server, status: int, method: str, path: str, **options: Any) -> Any:
    """The JSON answer of a request that must answer ``status``; otherwise stop, saying why."""
    got, answer = call(server.port, method, path, **options)
    if got != status:
        raise RuntimeError(f"{server.name}: {method} {path} answered {got}, not {status}: {answer}")
    return answer


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def started(
    name: str, command: list[str], env: dict[str, str], log: Path, port: int, root: Path = ROOT
) -> Iterator[tuple[Server, float]]:
    """A gunicorn started in ``root``, once its live route answered 200 and its workers are up;
    stopped on leaving. Also yields the seconds from launching it to that first 200."""
    begin = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=out)
    server = Server(name, process, port, log)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail(log)}")
            if time.perf_counter() - begin > STARTUP_SECONDS:
                raise RuntimeError(
                    f"{name} did not answer within {STARTUP_SECONDS} s:\n{tail(log)}"
                )
            try:
                if call(port, "GET", LIVE, timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        startup = time.perf_counter() - begin
        while len(server.workers()) < WORKERS:
            if time.perf_counter() - begin > STARTUP_SECONDS:
                raise RuntimeError(f"{name}: fewer than {WORKERS} workers:\n{tail(log)}")
            time.sleep(0.05)
        yield server, startup
    finally:
        stop(process)


def base_env() -> dict[str, str]:
    """This environment without settings of either app (ours come explicitly)."""
    prefixes = ("POWERSTRIP_", "GUNICORN_", "PROMETHEUS_MULTIPROC_DIR", "BARE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)} | {
        "GUNICORN_WORKERS": str(WORKERS),
        "GUNICORN_THREADS": str(THREADS),
        "GUNICORN_WORKER_CLASS": worker_class(),
    }


def worker_class() -> str:
    """Both apps' gunicorn worker class: GUNICORN_WORKER_CLASS of this environment, or gthread."""
    return os.environ.get("GUNICORN_WORKER_CLASS", "gthread")


def powerstrip_env(instance: Path, database_url: str | None) -> dict[str, str]:
    """Powerstrip's environment: `make run`'s, in a temporary instance folder."""
    env = base_env() | {
        "POWERSTRIP_INSTANCE_PATH": str(instance),
        # High enough never to refuse wrk (one address), so the limiter runs but never answers 429.
        "POWERSTRIP_RATELIMIT_DEFAULT": '["1000000/minute"]',
        # One login for the whole run (the maximum lifetime).
        "POWERSTRIP_ACCOUNTS__ACCESS_TOKEN_MINUTES": "1440",
    }
    if database_url is not None:
        env["POWERSTRIP_DATABASE_URL"] = database_url
    return env


def run(command: list[str], env: dict[str, str], root: Path = ROOT) -> str:
    """A command's output (run in ``root``); its output and status in the error when it fails."""
    result = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@dataclass
class App:
    """How to prepare and start one of the apps on one database."""

    name: str
    command: list[str]
    env: dict[str, str]
    folder: Path
    root: Path = ROOT

    def start(self) -> AbstractContextManager[tuple[Server, float]]:
        port, metrics_port = free_ports(2)
        env = self.env | {"GUNICORN_BIND": f"127.0.0.1:{port}"}
        if self.name != "bare":  # Powerstrip's metrics port, never a fixed one (9464)
            env["POWERSTRIP_METRICS_PORT"] = str(metrics_port)
        log = self.folder / "gunicorn.log"
        return started(self.name, self.command, env, log, port, self.root)


def prepare_powerstrip(
    folder: Path, database_url: str | None, name: str = "powerstrip", root: Path = ROOT
) -> tuple[App, str, str]:
    """Migrate Powerstrip's database and create its admin, as `make run` and the README say;
    Powerstrip as checked out in ``root``."""
    instance = folder / "instance"
    instance.mkdir()
    (instance / "config.toml").write_text('ENVIRONMENT = "development"\n')  # as make run writes
    env = powerstrip_env(instance, database_url)
    # python -m flask: the checkout in root comes first on sys.path (the flask script would
    # import the host from wherever this virtual environment installed it editable).
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    run([*flask, "db", "upgrade"], env, root)
    email, password = "admin@bench.example.com", uuid.uuid4().hex
    run([*flask, "accounts", "create-admin", "--email", email, "--password", password], env, root)
    command = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"]
    return App(name, command, env, folder, root), email, password


def prepare_bare(
    folder: Path, database_url: str | None, *, observed: bool = False
) -> tuple[App, int]:
    """Create the bare app's tables and project; the project's id. ``observed``: the bare app
    with request ids, an access line, metrics and activity entries (``BARE_OBSERVED``)."""
    url = database_url or f"sqlite:///{folder / 'bare.db'}"
    env = base_env() | {"BARE_DATABASE_URL": url}
    flask = [sys.executable, "-m", "flask", "--app", "bench.bare.bare_app"]
    project_id = int(run([*flask, "init-db"], env))
    if observed:
        env["BARE_OBSERVED"] = "1"
    command = [
        str(BIN / "gunicorn"),
        "--config",
        str(BENCH / "bare" / "gunicorn.conf.py"),
        "bench.bare.bare_app:app",
    ]
    return App("bare", command, env, folder), project_id


def seed(server: Server, project_path: str, auth: dict[str, str]) -> int:
    """The seeded tasks (the same bodies for both apps); the id of the first."""
    ids = [
        expect(server, 201, "POST", f"{project_path}/tasks", body=seed_body(n), headers=auth)["id"]
        for n in range(1, SEED_TASKS + 1)
    ]
    return int(ids[0])


def scenarios(project_path: str, task_id: int, auth: dict[str, str]) -> dict[str, Request]:
    insert = json.dumps(INSERT_BODY)
    return {
        "live": Request(LIVE),
        "list": Request(f"{project_path}/tasks?page_size=20&cursor=", headers=auth),
        "insert": Request(f"{project_path}/tasks", "POST", auth, insert, status=201),
        "get-etag": Request(f"{project_path}/tasks/{task_id}", headers=auth),
    }


def seed_powerstrip(server: Server, email: str, password: str) -> None:
    """Log in, mint an API key, create the project and its tasks through the API."""
    credentials = {"email": email, "password": password}
    token = expect(server, 200, "POST", "/api/v1/accounts/tokens", body=credentials)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    key = expect(
        server,
        201,
        "POST",
        "/api/v1/accounts/api-keys",
        body={"name": "bench", "scopes": ["tasks:use"]},
        headers=bearer,
    )["key"]
    project = expect(
        server, 201, "POST", "/api/v1/tasks/projects", body={"name": "bench"}, headers=bearer
    )
    path = f"/api/v1/tasks/projects/{project['id']}"
    server.requests = scenarios(path, seed(server, path, bearer), bearer)
    listed = server.requests["list"]
    server.requests["list-key"] = Request(listed.path, headers={"X-API-Key": key})


def seed_bare(server: Server, project_id: int) -> None:
    path = f"/api/v1/tasks/projects/{project_id}"
    server.requests = scenarios(path, seed(server, path, {}), {})


def preflight(server: Server, scenario: str) -> Any:
    """One request of the scenario, which must answer exactly its status (wrk counts only
    statuses >= 400); its answer."""
    request = server.requests[scenario]
    return expect(
        server,
        request.status,
        request.method,
        request.path,
        body=request.body or None,
        headers=request.headers,
    )


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of the processes still running, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a worker that died: the run is flagged
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def pss_kib(pid: int) -> int:
    """The worker's proportional set size: its private pages, and its share of the pages it
    shares (with the master that preloaded the app, with the other workers). RSS counts every
    shared page whole in every worker."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def drive(server: Server, scenario: str, args: argparse.Namespace, seconds: int) -> dict[str, Any]:
    """One wrk run: its counts and latencies, and the workers' CPU per request."""
    request = server.requests[scenario]
    command = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "wrk.lua"),
    ]
    for name, value in request.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{server.port}{request.path}")
    env = base_env() | {"BENCH_METHOD": request.method, "BENCH_BODY": request.body}
    workers = server.workers()
    before = cpu_ticks(workers)
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    after = cpu_ticks(workers)
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    counts: dict[str, Any] = json.loads(lines[0].removeprefix("BENCH_RESULT "))
    requests = max(counts["requests"], 1)  # 0 requests: flagged, figures of 1
    errors = sum(counts[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    restarted = server.workers() != workers
    return counts | {
        "app": server.name,
        "scenario": scenario,
        "rps": counts["requests"] / (counts["duration_us"] / 1e6),
        "p50_ms": counts["p50_us"] / 1000,
        "p99_ms": counts["p99_us"] / 1000,
        "cpu_us_per_request": (after - before) * CLOCK_TICK_US / requests,
        "socket_errors": errors,
        "workers_restarted": restarted,
        "flagged": bool(counts["non2xx"] or errors or restarted or not counts["requests"]),
    }


def summarise(runs: list[dict[str, Any]], apps: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Medians over rounds per scenario and app; each Powerstrip's ratios to the bare app's
    (under ``ratio``: ``powerstrip``'s, under ``ratios``: every one's by app)."""
    summary: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        row: dict[str, Any] = {}
        for app in apps:
            own = "list" if (app, scenario) == ("bare", "list-key") else scenario
            mine = [r for r in runs if r["app"] == app and r["scenario"] == own]
            if not mine:
                continue
            row[app] = {
                metric: statistics.median(r[metric] for r in mine) for metric in METRICS
            } | {
                "requests": sum(r["requests"] for r in mine),
                "non2xx": sum(r["non2xx"] for r in mine),
                "socket_errors": sum(r["socket_errors"] for r in mine),
                "workers_restarted": any(r["workers_restarted"] for r in mine),
                "flagged": any(r["flagged"] for r in mine),
            }
        row["ratios"] = {
            app: {k: row[app][k] / row["bare"][k] if row["bare"][k] else None for k in METRICS}
            for app in apps
            if app != "bare" and app in row and "bare" in row
        }
        row["rps_ratio_range"] = {app: round_ratios(runs, app, scenario) for app in row["ratios"]}
        if "powerstrip" in row["ratios"]:
            row["ratio"] = row["ratios"]["powerstrip"]
        summary[scenario] = row
    return summary


def round_ratios(runs: list[dict[str, Any]], app: str, scenario: str) -> tuple[float, float]:
    """The least and the greatest of ``app``'s req/s over the bare app's, round by round (each
    round's two runs were made one after the other): how far apart the rounds were."""
    bare = "list" if scenario == "list-key" else scenario
    of_bare = {r["round"]: r["rps"] for r in runs if r["app"] == "bare" and r["scenario"] == bare}
    ratios = [
        r["rps"] / of_bare[r["round"]]
        for r in runs
        if r["app"] == app and r["scenario"] == scenario and of_bare.get(r["round"])
    ]
    return (min(ratios), max(ratios)) if ratios else (math.nan, math.nan)


def times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def table(title: str, outcome: dict[str, Any], apps: tuple[str, ...] = APPS) -> str:
    """The Markdown tables of one database."""
    lines = [
        f"### {title}",
        "",
        "| scenario | app | req/s | ratio | p50 / p99 ms | CPU µs/req |",
        "|---|---|---:|---:|---:|---:|",
    ]
    notes = []
    for scenario, row in outcome["summary"].items():
        name = scenario
        for app in apps:
            if row[app]["flagged"]:
                name = f"{scenario} **FLAGGED**"
                notes.append(
                    f"- **{scenario}, {app}**: {row[app]['non2xx']} answers >= 400 and "
                    f"{row[app]['socket_errors']} socket errors of {row[app]['requests']} "
                    f"requests{'; a worker restarted' if row[app]['workers_restarted'] else ''}"
                )
        for app in apps:
            mine = row[app]
            ratio = row["ratios"].get(app)
            shown = (
                ("-", "", "")  # the bare app
                if ratio is None
                else (
                    "{} ({:.2f}-{:.2f})".format(times(ratio["rps"]), *row["rps_ratio_range"][app]),
                    f" ({times(ratio['p50_ms'])} / {times(ratio['p99_ms'])})",
                    f" ({times(ratio['cpu_us_per_request'])})",
                )
            )
            lines.append(
                f"| {name} | {app} | {mine['rps']:.0f} | {shown[0]} "
                f"| {mine['p50_ms']:.1f} / {mine['p99_ms']:.1f}{shown[1]} "
                f"| {mine['cpu_us_per_request']:.0f}{shown[2]} |"
            )
    lines += [
        "",
        "Medians over rounds. ratio: the app's req/s over the bare app's, then the least and "
        "the greatest of the rounds' own ratios; in brackets, its latencies and CPU over the "
        "bare app's. list-key: the bare app has no credentials, its figures are its list's.",
        *(notes or ["wrk counted no answer of status >= 400 and no socket error."]),
        "",
        "| app | RSS per worker MiB (median) | PSS per worker MiB (median) "
        "| PSS of master and workers over workers, MiB | startup to first 200 ms (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for app in apps:
        rss, startup = outcome["rss_kib"][app], outcome["startup_s"][app]
        pss, master = outcome["pss_kib"][app], outcome["master_pss_kib"][app]
        lines.append(
            f"| {app} | {statistics.median(rss) / 1024:.1f} ({len(rss)} workers) "
            f"| {statistics.median(pss) / 1024:.1f} "
            f"| {(master + sum(pss)) / len(pss) / 1024:.1f} "
            f"| {statistics.median(startup) * 1000:.0f} ({len(startup)} starts) |"
        )
    return "\n".join(lines)


@contextmanager
def postgres_databases(admin_url: str, apps: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """A fresh database for each app, dropped on leaving."""
    token = uuid.uuid4().hex[:12]
    names = {app: f"bench_{token}_{app}" for app in apps}
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []
    try:
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(text(f'CREATE DATABASE "{name}"'))
                created.append(name)
        url = make_url(admin_url)
        yield {
            app: url.set(database=name).render_as_string(hide_password=False)
            for app, name in names.items()
        }
    finally:
        with admin.connect() as connection:
            for name in created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_unreachable(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    engine = create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        return str(exc.orig or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def start_all(
    stack: ExitStack, apps: dict[str, App], starts: int
) -> tuple[dict[str, Server], dict[str, list[float]]]:
    """Each app started ``starts`` times, one after the other; the last starts stay up (until
    ``stack`` closes). The servers, and each app's seconds to its first 200."""
    startup: dict[str, list[float]] = {app: [] for app in apps}
    for _ in range(starts - 1):  # starts only timed
        for name, app in apps.items():
            with app.start() as (_, seconds):
                startup[name].append(seconds)
    servers: dict[str, Server] = {}
    for name, app in apps.items():
        servers[name], seconds = stack.enter_context(app.start())
        startup[name].append(seconds)
    return servers, startup


def interleaved_rounds(
    database: str, servers: dict[str, Server], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every scenario on every app in turn, ``args.rounds`` times: each wrk run's figures."""
    runs = []
    for number in range(1, args.rounds + 1):
        for scenario in SCENARIOS:
            for app, server in servers.items():
                if scenario not in server.requests:
                    continue
                result = drive(server, scenario, args, args.duration)
                runs.append(result | {"round": number})
                say(
                    f"{database}: round {number} {scenario:8} {app:10} "
                    f"{result['rps']:8.0f} req/s  p99 {result['p99_ms']:6.1f} ms"
                    f"{'  FLAGGED' if result['flagged'] else ''}"
                )
    return runs


def bench_database(
    database: str, args: argparse.Namespace, urls: dict[str, str] | None = None
) -> dict[str, Any]:
    """The apps on one database (``urls`` by app; None: SQLite): startups, seeding, warm-up,
    the interleaved rounds."""
    names: tuple[str, ...] = args.apps
    with ExitStack() as stack:
        folders = {
            app: Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{app}-")))
            for app in names
        }
        say(f"{database}: migrating, creating the admin and the bare app's tables")
        bare, project_id = prepare_bare(
            folders["bare"], urls["bare"] if urls else None, observed=args.yardstick == "observed"
        )
        apps = {"bare": bare}
        logins = {}
        for app in names[1:]:
            root = args.baselines.get(app, ROOT)
            apps[app], *login = prepare_powerstrip(
                folders[app], urls[app] if urls else None, app, root
            )
            logins[app] = login
        say(f"{database}: starting each app {args.starts} times")
        servers, startup = start_all(stack, apps, args.starts)
        say(f"{database}: seeding {SEED_TASKS} tasks, warming up {args.warmup} s per scenario")
        seed_bare(servers["bare"], project_id)
        for app, (email, password) in logins.items():
            seed_powerstrip(servers[app], email, password)
        listed = {app: [task["title"] for task in preflight(servers[app], "list")] for app in names}
        if any(titles != listed["bare"] for titles in listed.values()) or len(listed["bare"]) != 20:
            raise RuntimeError(f"the apps list different tasks: {listed}")
        for scenario in SCENARIOS:
            for app in names:
                if scenario in servers[app].requests:
                    preflight(servers[app], scenario)
                    if args.warmup > 0:
                        drive(servers[app], scenario, args, args.warmup)
        runs = interleaved_rounds(database, servers, args)
        rss = {app: [rss_kib(pid) for pid in servers[app].workers()] for app in names}
        pss = {app: [pss_kib(pid) for pid in servers[app].workers()] for app in names}
        master = {app: pss_kib(servers[app].process.pid) for app in names}
        return {
            "runs": runs,
            "summary": summarise(runs, names),
            "rss_kib": rss,
            "pss_kib": pss,
            "master_pss_kib": master,
            "startup_s": startup,
        }


def baselines(folders: list[Path], parser: argparse.ArgumentParser) -> dict[str, Path]:
    """``--baseline`` folders by app name: ``baseline`` for one, ``baseline1``... for more."""
    named = {}
    for number, folder in enumerate(folders, start=1):
        root = folder.resolve()
        if not (root / "wsgi.py").is_file():
            parser.error(f"--baseline {root}: no Powerstrip checkout there (no wsgi.py)")
        named["baseline" if len(folders) == 1 else f"baseline{number}"] = root
    return named


def commit_of(root: Path) -> str:
    """The commit checked out in ``root`` (``git describe``), or ``?`` where git cannot say."""
    git = shutil.which("git")
    if git is None:
        return "?"
    described = subprocess.run(
        [git, "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return described.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per scenario and app")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--warmup", type=int, default=2, help="seconds per scenario, untimed")
    parser.add_argument("--starts", type=int, default=3, help="gunicorn starts timed per app")
    parser.add_argument("--databases", default=",".join(DATABASES), help="comma-separated")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to connect to while creating and dropping bench_* databases",
    )
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument(
        "--yardstick",
        choices=["plain", "observed"],
        default="plain",
        help="the bare app as issue 14 defines it (plain), or also giving request ids, writing "
        "an access line, keeping metrics and writing activity entries (observed)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="also run the Powerstrip checked out in this folder (an earlier commit), as "
        "'baseline', in the same rounds; given more than once: baseline1, baseline2...",
    )
    args = parser.parse_args()
    args.baselines = baselines(args.baseline, parser)
    args.apps = APPS + tuple(args.baselines)
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if unknown := set(databases) - set(DATABASES):
        parser.error(f"unknown databases: {', '.join(sorted(unknown))}")
    if args.rounds < 1 or args.starts < 1 or args.duration < 1:
        parser.error("--rounds, --starts and --duration must be at least 1")
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        sys.exit("wrk is not installed: `sudo apt-get install wrk` on Debian/Ubuntu")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out

    settings = vars(args) | {
        "worker_class": worker_class(),
        "json": str(args.json) if args.json else None,
        "baseline": [str(root) for root in args.baselines.values()],
        "baselines": {name: str(root) for name, root in args.baselines.items()},
        "apps": list(args.apps),
        "postgres_url": make_url(args.postgres_url).render_as_string(hide_password=True),
    }
    results: dict[str, Any] = {"settings": settings}
    threads = f" of {THREADS} threads" if worker_class() == "gthread" else ""
    print(f"{', '.join(args.apps)}: {WORKERS} gunicorn {worker_class()} workers{threads} each")
    if args.yardstick == "observed":
        print("bare: the observed yardstick (request ids, access line, metrics, activity)")
    for app, root in {"powerstrip": ROOT, **args.baselines}.items():
        settings.setdefault("commits", {})[app] = commit_of(root)
        print(f"{app}: {root} at {settings['commits'][app]}")
    print()
    for database in databases:
        reason = postgres_unreachable(args.postgres_url) if database == "postgresql" else None
        if reason is not None:
            print(f"PostgreSQL skipped: unreachable ({reason})\n", flush=True)
            results[database] = {"skipped": reason}
        elif database == "sqlite":
            results[database] = bench_database(database, args)
        else:
            with postgres_databases(args.postgres_url, args.apps) as urls:
                results[database] = bench_database(database, args, urls)
        if reason is None:
            title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[database]
            print(f"{table(title, results[database], args.apps)}\n", flush=True)
        if args.json:  # after each database: a failure later keeps what was measured
            args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
