"""WSGI entry point: ``gunicorn --config gunicorn.conf.py wsgi:app``."""

from __future__ import annotations

import sys

from app import StartupError, create_app

try:
    app = create_app()
except StartupError as exc:
    print(f"powerstrip: {exc}", file=sys.stderr, flush=True)
    # 4 is gunicorn's "app failed to load": the master stops instead of respawning workers.
    raise SystemExit(4) from None
