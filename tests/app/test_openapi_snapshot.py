"""The OpenAPI document of the shipped plugins, compared with the one checked in.

Work on the request path (performance, refactoring) must not change what the API documents; a
change that should, updates ``openapi.snapshot.json`` on purpose and shows in review::

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/app/test_openapi_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from app import create_app

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")
SHIPPED = ["accounts", "health", "tasks"]  # plugins/, found through their entry points


def _document(instance: Path) -> str:
    app = create_app(
        {
            "ENVIRONMENT": "testing",
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": f"sqlite:///{instance / 'test.db'}",
            "PLUGINS": SHIPPED,
        }
    )
    try:
        response = app.test_client().get("/api/openapi.json")
        assert response.status_code == 200
        return json.dumps(response.get_json(), indent=2, sort_keys=True) + "\n"
    finally:
        app.extensions["powerstrip.database"].engine.dispose()


def test_openapi_document_is_the_checked_in_one(instance_path: Path) -> None:
    document = _document(instance_path)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(document)
    expected = SNAPSHOT.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            document.splitlines(keepends=True),
            "openapi.snapshot.json",
            "the app's document",
            n=2,
        )
    )
    assert not diff, f"the OpenAPI document changed:\n{diff[:6000]}"
