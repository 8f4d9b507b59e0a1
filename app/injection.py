"""Dependency injection for plugin CLI commands (views get it from flask-injector)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import injector
from flask import current_app
from flask.cli import with_appcontext

R = TypeVar("R")

INJECTOR = "powerstrip.injector"


def injected(function: Callable[..., R]) -> Callable[..., R]:
    """Give a click command's annotated parameters from the app's injector.

    Put it under the click decorators::

        @commands.command("greet")
        @click.argument("name")
        @injected
        def greet(name: str, service: GreetingService) -> None: ...

    Parameters click fills (arguments, options) are left alone; the rest are injected.
    """
    marked = injector.inject(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        app_injector: injector.Injector = current_app.extensions[INJECTOR]
        result: R = app_injector.call_with_injection(marked, args=args, kwargs=kwargs)
        return result

    return with_appcontext(wrapper)
