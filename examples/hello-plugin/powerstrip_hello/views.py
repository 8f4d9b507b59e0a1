"""HTTP views of the hello plugin: validate, call the service, return."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from powerstrip import Page, PageRequest, paginated

from powerstrip_hello.models import GreetingRecord
from powerstrip_hello.schemas import (
    LONGEST_NAME,
    GreetingRequestSchema,
    GreetingSchema,
    StoredGreetingSchema,
)
from powerstrip_hello.service import Greeting, GreetingLog, GreetingService

blueprint = Blueprint("hello", __name__, description="Greetings")


# A name longer than any setting allows names no greeting: the route does not match (404).
@blueprint.route(f"/greetings/<string(maxlength={LONGEST_NAME}):name>")
@blueprint.response(200, GreetingSchema)
def greeting(name: str, service: GreetingService) -> Greeting:
    """Greet someone by name."""
    return service.greet(name)


@blueprint.route("/greetings", methods=["POST"])
@blueprint.arguments(GreetingRequestSchema())
@blueprint.response(201, StoredGreetingSchema)
def create_greeting(body: dict[str, Any], log: GreetingLog) -> GreetingRecord:
    """Greet the person named in the body and store the greeting."""
    return log.record(body["name"])


@blueprint.route("/greetings/by-id/<int:greeting_id>", methods=["GET"])
@blueprint.response(200, StoredGreetingSchema)
@blueprint.alt_response(404, response="NOT_FOUND")
def stored_greeting(greeting_id: int, log: GreetingLog) -> GreetingRecord:
    """A stored greeting."""
    return log.get(greeting_id)


@blueprint.route("/greetings", methods=["GET"])
@blueprint.response(200, StoredGreetingSchema(many=True))
@paginated(max_page_size=50, keyset=True)
def list_greetings(log: GreetingLog, paging: PageRequest) -> Page[GreetingRecord]:
    """The stored greetings, newest first (by page number or cursor)."""
    return log.latest(paging)
