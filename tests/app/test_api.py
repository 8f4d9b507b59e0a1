"""The OpenAPI document and the offline docs page."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app.api import DOCS_CSP


def test_openapi_document_is_valid_3_1(client: FlaskClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] == "Powerstrip"
    validate(spec)
    assert "/api/probe/items" in spec["paths"]


def test_every_operation_documents_429_and_default_problem(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    methods = {"get", "put", "post", "delete", "patch"}
    operations = [
        op
        for name, path in spec["paths"].items()
        if not name.startswith("/api/v1/health/")  # exempt from rate limits, see its tests
        for method, op in path.items()
        if method in methods
    ]
    assert operations
    for operation in operations:
        assert operation["responses"]["429"] == {"$ref": "#/components/responses/TOO_MANY_REQUESTS"}
        assert operation["responses"]["default"] == {"$ref": "#/components/responses/DEFAULT_ERROR"}
    too_many = spec["components"]["responses"]["TOO_MANY_REQUESTS"]
    assert "Retry-After" in too_many["headers"]


def test_validation_response_is_documented(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    post = spec["paths"]["/api/probe/items"]["post"]
    assert post["responses"]["422"] == {"$ref": "#/components/responses/UNPROCESSABLE_ENTITY"}


def test_document_without_plugins_is_valid(make_app: object) -> None:
    from app import create_app  # noqa: PLC0415

    bare = create_app({"ENVIRONMENT": "testing"})
    validate(bare.test_client().get("/api/openapi.json").get_json())


def test_flask_openapi_write(app: Flask, tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    result = app.test_cli_runner().invoke(args=["openapi", "write", str(target)])
    assert result.exit_code == 0, result.output
    written = json.loads(target.read_text())
    validate(written)
    assert "/api/probe/items" in written["paths"]


def test_docs_page_loads_only_local_assets(client: FlaskClient) -> None:
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == DOCS_CSP
    page = response.get_data(as_text=True)
    assert "http://" not in page
    assert "https://" not in page
    assert "<script>" not in page  # no inline script: CSP needs no 'unsafe-inline'
    assert 'data-spec-url="/api/openapi.json"' in page
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f"/api/docs/assets/{asset}" in page
        with client.get(f"/api/docs/assets/{asset}") as served:
            assert served.status_code == 200
            assert len(served.data) > 1000


def test_docs_assets_are_swagger_ui_5(client: FlaskClient) -> None:
    with client.get("/api/docs/assets/swagger-ui-bundle.js") as response:
        bundle = response.get_data(as_text=True)
    with client.get("/api/docs/init.js") as init:
        assert init.status_code == 200
        assert init.mimetype == "text/javascript"
        assert "SwaggerUIBundle" in init.get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle
    from importlib import resources  # noqa: PLC0415

    version = (resources.files("flask_swagger_ui") / "dist" / "VERSION").read_text().strip()
    assert version.startswith("v5.")
