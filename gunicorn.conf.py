"""gunicorn settings: ``gunicorn --config gunicorn.conf.py wsgi:app``.

Every value can be overridden from the environment (GUNICORN_BIND, GUNICORN_WORKERS, ...).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Prometheus multiprocess mode: every process writes its samples into one directory, fresh for
# each server start. Set before anything imports the app (and so prometheus-client). gunicorn
# runs this file again on HUP (same master: keep the directory and its samples) and in the new
# master of a USR2 upgrade (another pid: a directory of its own, since the old master removes
# its own when it exits).
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWNER_ENV = "PROMETHEUS_MULTIPROC_DIR_OWNER"  # "<master pid>:<dir it created>" or ":operator"
_owner = os.environ.get(_OWNER_ENV, "")
if not _owner.startswith(f"{os.getpid()}:"):  # this master's first load (not a HUP reload)
    if os.environ.get(_METRICS_ENV) and not _owner:  # the operator's: made, emptied, kept
        _directory = Path(os.environ[_METRICS_ENV])
        _directory.mkdir(parents=True, exist_ok=True)
        for _stale in _directory.glob("*.db"):  # a previous run's samples
            _stale.unlink()
        os.environ[_OWNER_ENV] = f"{os.getpid()}:operator"
    elif not _owner.endswith(":operator"):  # ours (a USR2 master: not the old master's)
        _created = tempfile.mkdtemp(prefix="powerstrip-metrics-")
        os.environ[_METRICS_ENV] = _created
        os.environ[_OWNER_ENV] = f"{os.getpid()}:{_created}"

from app import metrics  # noqa: E402 - after PROMETHEUS_MULTIPROC_DIR
from app.db import after_fork  # noqa: E402
from app.gunicorn_logger import GunicornLogger  # noqa: E402
from app.logs import logging_config  # noqa: E402

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(min(multiprocessing.cpu_count() * 2, 8))))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# gthread, measured against sync with make bench (docs/performance.md): keep-alive connections
# and slow clients do not hold a whole worker, and a request waiting on the database lets the
# worker's other threads run.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
# Build the app once in the master: a broken configuration or plugin stops startup with one
# clean message instead of every worker failing in turn, and workers share its memory.
# Anything holding sockets (database engines) must be reset in the worker after fork.
preload_app = True
# Without reuse_port one worker often accepts every keep-alive connection and the others idle.
reuse_port = True
# Heartbeat files on tmpfs: a disk-backed /tmp can stall workers into false timeouts.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - tmpfs on purpose, as gunicorn's docs advise
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Refused by gunicorn before the app, in plain text (README, "Behind nginx: slow clients and
# request limits"; deploy/nginx.conf refuses these sizes first, as problems). The request line
# at gunicorn's maximum, 8190 bytes: the longest documented query (a tasks page: a 2000-character
# cursor, a 200-character `q` and a 64-character `assignee`, non-ASCII percent-encoded) reaches
# ~5.4 KB, past the default 4094. Header fields at gunicorn's defaults: 100 of at most 8190 bytes
# each (CRLF included).
# None of these bounds a slow client's time: see README.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "8190"))
limit_request_fields = int(os.environ.get("GUNICORN_LIMIT_REQUEST_FIELDS", "100"))
limit_request_field_size = int(os.environ.get("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", "8190"))
# Off by default: a recycled worker resets the connections waiting on its own socket
# (reuse_port), and leaves its metrics samples behind until the next start. A leak's stopgap.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "1000"))

# JSON lines on stdout, the same format as the app's. The app writes one access record per
# request (with the route rule and request id), so gunicorn's own access log is off unless
# GUNICORN_ACCESSLOG=1; it is JSON too when on.
logconfig_dict = logging_config(
    os.environ.get("POWERSTRIP_LOG_LEVEL", "INFO"),
    gunicorn_access_log=os.environ.get("GUNICORN_ACCESSLOG", "") in {"1", "true", "-"},
    bind=bind.split(","),
)
logger_class = GunicornLogger  # no access line built unless GUNICORN_ACCESSLOG asks
# Its format: the path without the query string, and no user name or referrer, any of which
# may carry a token or personal data (as the app's own record has none of them).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'
errorlog = "-"
capture_output = False
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "powerstrip"


# No control socket (gunicorn 25+): two servers on one machine would share
# ~/.gunicorn/gunicorn.ctl. GUNICORN_CONTROL_SOCKET names a path to have one.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket


def when_ready(server: Any) -> None:
    """Serve the metrics (of every process) on their own port, and say where."""
    app = server.app.wsgi()
    host_config = app.extensions["powerstrip.config"]
    served = None
    if app.extensions.get(metrics.METRICS) is not None:
        try:
            address = metrics.serve(
                host_config.METRICS_HOST, host_config.METRICS_PORT, server.cfg.bind
            )
            served = address.server_address[:2]
        except (OSError, ValueError) as exc:  # the API serves on; the operator is told why
            server.log.error("metrics not served: %s", exc)
    if served is not None:
        server.log.info("metrics at http://%s:%s/metrics", *served)
        server.log.info("metrics samples in %s", os.environ[_METRICS_ENV])


def child_exit(_server: Any, worker: Any) -> None:
    """A worker ended: its live gauges (in flight, pool) leave the sums."""
    metrics.mark_process_dead(worker.pid)


def on_exit(_server: Any) -> None:
    """Remove the samples directory this master created."""
    directory = os.environ[_METRICS_ENV]
    if os.environ.get(_OWNER_ENV) == f"{os.getpid()}:{directory}":
        shutil.rmtree(directory, ignore_errors=True)


def pre_fork(_server: Any, _worker: Any) -> None:
    """Freeze the preloaded app's objects so the GC never touches (and copies) their pages.

    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.freeze()


def post_fork(server: Any, _worker: Any) -> None:
    """Each worker opens its own database connections (the app was built in the master)."""
    after_fork(server.app.wsgi())
