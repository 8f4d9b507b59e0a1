"""A probe blueprint: real endpoints that exercise the host's error, logging and doc paths."""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from powerstrip import Problem

log = logging.getLogger("tests.probe")


class ItemSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=50))
    count = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0))
    tags = ma.fields.List(ma.fields.String(validate=ma.validate.Length(max=10)))


class DriverError(Exception):
    """A database driver's error carrying its SQLSTATE, as psycopg's do."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def make_probe_blueprint() -> Blueprint:
    blp = Blueprint("probe", __name__, url_prefix="/api/probe", description="Test probe")

    @blp.route("/items")
    class Items(MethodView):
        @blp.arguments(ItemSchema)
        @blp.response(201, ItemSchema)
        def post(self, item: dict[str, Any]) -> dict[str, Any]:
            """Echo a validated item."""
            log.info("item accepted", extra={"item_name": item["name"]})
            return item

        @blp.response(200, ItemSchema(many=True))
        def get(self) -> list[dict[str, Any]]:
            """List nothing."""
            return []

    @blp.route("/status/<int:code>")
    @blp.response(200)
    def status(code: int) -> None:
        """Fail with the given status."""
        abort(code)

    @blp.route("/problem")
    @blp.response(200)
    def problem() -> None:
        """Raise a Problem as a service would."""
        raise Problem(
            409,
            "The item was changed by someone else.",
            type="urn:powerstrip:problem:conflict",
            title="Edit conflict",
            headers={"Retry-After": "5"},
        )

    @blp.route("/stale")
    @blp.response(200)
    def stale() -> None:
        """Lose an optimistic-concurrency race."""
        raise StaleDataError("UPDATE statement on table 'x' expected to update 1 row(s)")

    @blp.route("/integrity")
    @blp.response(200)
    def integrity() -> None:
        """Lose a uniqueness race the service could not see."""
        raise IntegrityError(
            "INSERT INTO accounts_users (email) VALUES (?)",
            {"email": "ann@example.com"},
            Exception("UNIQUE constraint failed: accounts_users.email"),
        )

    @blp.route("/toolong")
    @blp.response(200)
    def toolong() -> None:
        """Store a value the column cannot hold (validation let it through)."""
        raise DataError(
            "INSERT INTO things (name) VALUES (%(name)s)",
            {"name": "x" * 60},
            DriverError("value too long for type character varying(50)", "22001"),
        )

    @blp.route("/divide")
    @blp.response(200)
    def divide() -> None:
        """A data error that is a bug: not the client's input."""
        raise DataError("SELECT 1 / 0", {}, DriverError("division by zero", "22012"))

    @blp.route("/boom")
    @blp.response(200)
    def boom() -> None:
        """Fail with a bug."""
        raise RuntimeError("database password is hunter2")

    return blp


def register_probe(app: Flask) -> Flask:
    app.extensions["powerstrip.api"].register_blueprint(make_probe_blueprint())
    return app


def parse_samples(text: str) -> dict[str, float]:
    """Prometheus text format -> ``name{label="value",...}`` (labels sorted) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found
