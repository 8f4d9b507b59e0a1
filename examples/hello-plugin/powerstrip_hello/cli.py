"""``flask hello ...`` commands."""

from __future__ import annotations

import click
from powerstrip import injected

from powerstrip_hello.service import GreetingService

commands = click.Group("hello", help="Greetings from the command line.")


@commands.command("greet")
@click.argument("name")
@injected
def greet(name: str, service: GreetingService) -> None:
    """Print the greeting for NAME."""
    click.echo(service.greet(name).message)
