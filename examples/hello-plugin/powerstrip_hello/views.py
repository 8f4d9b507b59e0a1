"""HTTP views of the hello plugin: validate, call the service, return."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from powerstrip_hello.schemas import GreetingRequestSchema, GreetingSchema
from powerstrip_hello.service import Greeting, GreetingService

blueprint = Blueprint("hello", __name__, description="Greetings")


@blueprint.route("/greetings/<string:name>")
@blueprint.response(200, GreetingSchema)
def greeting(name: str, service: GreetingService) -> Greeting:
    """Greet someone by name."""
    return service.greet(name)


@blueprint.route("/greetings", methods=["POST"])
@blueprint.arguments(GreetingRequestSchema)
@blueprint.response(201, GreetingSchema)
def create_greeting(body: dict[str, Any], service: GreetingService) -> Greeting:
    """Greet the person named in the body."""
    return service.greet(body["name"])
