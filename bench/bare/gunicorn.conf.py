"""gunicorn settings of the bare app (bench/bare/bare_app.py), from the repository's root:

    gunicorn --config bench/bare/gunicorn.conf.py bench.bare.bare_app:app

Powerstrip's serving settings that shape throughput (gunicorn.conf.py): GUNICORN_WORKER_CLASS
(gthread) workers with GUNICORN_WORKERS x GUNICORN_THREADS, reuse_port (every worker gets
connections), heartbeats on tmpfs, a 5 s keep-alive; no preloading; no access log and no
metrics unless BARE_OBSERVED=1 (bare_app.py).
"""

import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
reuse_port = True
worker_tmp_dir = "/dev/shm"  # noqa: S108 - tmpfs on purpose, as Powerstrip's
keepalive = 5
errorlog = "-"
proc_name = "bare"
control_socket_disable = True  # two servers on one machine would share ~/.gunicorn/gunicorn.ctl

# BARE_OBSERVED (bare_app.py): prometheus-client's multiprocess mode, as Powerstrip's workers
# run it, in a directory of this server's own (set before the workers import the app).
if os.environ.get("BARE_OBSERVED") == "1":
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bare-metrics-")


def on_exit(_server: object) -> None:
    """Remove the samples directory made above."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.environ.get("BARE_OBSERVED") == "1" and "bare-metrics-" in directory:
        shutil.rmtree(directory, ignore_errors=True)
