"""Dependency injection for plugin CLI commands: ``@injected`` (views get it from flask-injector).

A command runs in a scope of its own, like a request: it gets the same request-scoped
``Session`` and ``UnitOfWork`` the views get, the whole command is one unit of work (committed
when the command returns, rolled back when it raises; events delivered after the commit), and
the session is closed when the command ends.
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import injector
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_injector import RequestScope

from powerstrip.db import UnitOfWork
from powerstrip.problems import Problem

R = TypeVar("R")

INJECTOR = "powerstrip.injector"  # where the host keeps the app's Injector (app.extensions)


def detached_environ() -> dict[str, Any]:
    """A WSGI environ for a scope that serves no client (a command, the host's boot checks).

    A bare ``GET /`` built by hand: it spares every process the import of werkzeug's test
    machinery (``test_request_context``), about 15 ms.
    """
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def injected(function: Callable[..., R]) -> Callable[..., R]:
    """Give a click command's annotated parameters from the app's injector.

    Put it under the click decorators::

        @commands.command("purge")
        @click.option("--older-than", default="30d")
        @injected
        def purge(older_than: str, service: TaskService) -> None: ...

    Parameters click fills (arguments, options) are left alone; the rest are injected. The
    command is one unit of work; a :class:`~powerstrip.Problem` it raises becomes a one-line
    error (exit status 1) and rolls the work back.
    """
    marked = injector.inject(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        app_injector: injector.Injector = app.extensions[INJECTOR]
        # The request scope (and the session's teardown) are tied to a request context.
        with app.request_context(detached_environ()):
            app_injector.get(RequestScope).prepare()
            try:
                with app_injector.get(UnitOfWork):
                    result: R = app_injector.call_with_injection(marked, args=args, kwargs=kwargs)
            except Problem as problem:
                raise click.ClickException(problem.summary()) from None
        return result

    return with_appcontext(wrapper)
