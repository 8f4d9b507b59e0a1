"""``powerstrip.testing``: pytest fixtures for a plugin's own tests.

A pytest plugin, registered by the host's ``pytest11`` entry point ``powerstrip``: installing the
host gives a plugin's tests these fixtures, without importing anything and without the host's own
test suite. Every app is the real one, built by the host's ``create_app``, with only the plugins
the test names enabled, so other installed plugins never change a plugin's tests. Importing this
module loads nothing of the host: the first fixture that builds an app does.

Fixtures (all named ``powerstrip_...``):

``powerstrip_plugins``
    The plugins ``powerstrip_app`` enables. Override it in your ``conftest.py``
    (``return ["hello"]``), with the plugins yours ``requires``.
``powerstrip_config``
    Configuration overrides for ``powerstrip_app``: host keys and plugin sections
    (``{"hello": {"GREETING": "Hi"}}``). Override it for a module or a test; default ``{}``.
``powerstrip_modules``
    Extra injector modules for ``powerstrip_app``, installed after every plugin's, so their
    bindings win: how a fake replaces a chosen interface. Override it; default ``[]``.
``powerstrip_make_app``
    ``powerstrip_make_app(*plugins, config=None, modules=(), migrated=True)`` builds an app:
    ``ENVIRONMENT=testing``, a temporary instance folder, no ``POWERSTRIP_*`` variable of the
    shell (set one in the test body with ``monkeypatch.setenv``, before building the app), the
    test caller's authenticator. With ``migrated`` (the default) its database is migrated and
    everything the test writes is rolled back at its end; ``migrated=False`` gives it an empty
    database of its own (to test migrations: ``db upgrade``, ``db downgrade base``).
    ``PLUGINS`` and ``DATABASE_URL`` are the kit's: passing them in ``config`` is an error.
``powerstrip_app``
    The app of ``powerstrip_plugins``, ``powerstrip_config`` and ``powerstrip_modules``.
``powerstrip_client``
    An anonymous Flask test client of ``powerstrip_app``.
``powerstrip_caller``
    ``powerstrip_caller(*scopes, subject="test-user", kind="user")``: a test client of
    ``powerstrip_app`` whose every request is authenticated as a caller with those scopes,
    without any authenticating plugin (:func:`caller_client` does it for another app). It sends
    the header :data:`TEST_CALLER_HEADER`, which only the kit's apps read: no plugin contributes
    their authenticator, the kit passes it to ``create_app``. It is asked before the plugins'
    authenticators, so it works with accounts enabled too (the caller is not an account).
``powerstrip_events``
    The :class:`EventRecorder` of ``powerstrip_app``'s event bus, recording from the start of
    the test (:func:`record_events` records another app's).
``plugin_conformance``
    ``plugin_conformance("NAME", plugins=(), config=None, modules=())`` runs the conformance
    suite on an installed plugin, with the plugins it requires and ``plugins`` (say, one that
    binds a contract it uses) enabled, ``config`` and ``modules`` as for ``powerstrip_make_app``:
    strict loading, migrations (upgrade from
    empty, ``db check``, downgrade to base, upgrade), table names, the OpenAPI document of every
    operation, bad input (a malformed body, wrong-typed fields, unknown path parameters: a
    documented problem, never a 5xx) and secret settings. It fails the test listing every
    failure, one line each; it returns the :class:`ConformanceReport` when all pass. One line in
    a plugin's tests: ``def test_conformance(plugin_conformance): plugin_conformance("hello")``.
``metric(app, name, **labels)``
    A helper, not a fixture: the value of one sample of the app's Prometheus metrics (a
    plugin's own, ``hello_greetings_stored_total``, or the host's), or None.
``powerstrip_runner``
    A Flask CLI runner of ``powerstrip_app``: ``powerstrip_runner.invoke(args=["hello", "greet",
    "Ada"])``. An ``@injected`` command runs as in production (a scope of its own, one unit of
    work), inside the test's transaction. For another app, ``app.test_cli_runner()``.

Databases: SQLite files by default; PostgreSQL with ``--powerstrip-database-url URL`` or
``POWERSTRIP_TEST_DATABASE_URL``, naming a server and a database to connect to: the kit creates
fresh databases there and drops them at the end (the role needs ``CREATEDB``). A test session
has one database per set of enabled plugins, migrated when an app first uses it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import pytest

from powerstrip.auth import Principal
from powerstrip.cli import INJECTOR
from powerstrip.events import EventBus
from powerstrip.plugin import InjectorModule
from powerstrip.testing._conformance import ConformanceReport, PluginConformance, run
from powerstrip.testing._databases import Database, Databases, rolled_back, upgrade

if TYPE_CHECKING:
    from flask import Flask, Request
    from flask.testing import FlaskClient, FlaskCliRunner
    from sqlalchemy import Connection

__all__ = [
    "DATABASE_URL_ENV",
    "TEST_CALLER_HEADER",
    "AppFactory",
    "CallerFactory",
    "ConformanceReport",
    "EventRecorder",
    "PluginConformance",
    "caller_client",
    "metric",
    "record_events",
]

E = TypeVar("E")

TEST_CALLER_HEADER = "X-Powerstrip-Test-Caller"
"""The test credential: JSON ``{"subject", "kind", "scopes"}``; only the kit's apps read it."""
DATABASE_URL_ENV = "POWERSTRIP_TEST_DATABASE_URL"
_DATABASE_OPTION = "--powerstrip-database-url"
_SERVER = pytest.StashKey[str | None]()
_DATABASE = "powerstrip.database"  # where the host keeps an app's Database (app.db.DATABASE)
_RECORDER = "powerstrip.testing.events"
_METRICS = "powerstrip.metrics"  # where the host keeps an app's metrics (app.metrics.METRICS)
_KIT_KEYS = ("PLUGINS", "DATABASE_URL")


class AppFactory(Protocol):
    """The type of ``powerstrip_make_app``."""

    def __call__(
        self,
        *plugins: str,
        config: Mapping[str, Any] | None = None,
        modules: Sequence[InjectorModule] = (),
        migrated: bool = True,
    ) -> Flask: ...


class CallerFactory(Protocol):
    """The type of ``powerstrip_caller``."""

    def __call__(
        self, *scopes: str, subject: str = "test-user", kind: str = "user"
    ) -> FlaskClient: ...


@dataclass
class EventRecorder:
    """What one app's event bus saw since it was recorded.

    :param published: every published event, including those a rollback then dropped
    :param delivered: the events delivered to subscribers (after their unit of work committed)
    """

    published: list[object] = field(default_factory=list)
    delivered: list[object] = field(default_factory=list)

    def of(self, event_type: type[E]) -> list[E]:
        """The delivered events of ``event_type`` (or a subclass), in order."""
        return [event for event in self.delivered if isinstance(event, event_type)]

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.published.clear()
        self.delivered.clear()


class _TestCaller:
    """The test credential -> the caller it names. Only the kit's apps ask it."""

    credentials: ClassVar[tuple[str, ...]] = (TEST_CALLER_HEADER,)

    def authenticate(self, request: Request) -> Principal:
        """The caller the header names; a malformed header is refused (a 401)."""
        try:
            caller = json.loads(request.headers[TEST_CALLER_HEADER])
            return Principal.of(
                str(caller["subject"]), str(caller["kind"]), frozenset(caller["scopes"])
            )
        except (ValueError, KeyError, TypeError):
            return Principal.refused(f"Malformed {TEST_CALLER_HEADER} header.")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--powerstrip-database-url``."""
    parser.getgroup("powerstrip").addoption(
        _DATABASE_OPTION,
        dest="powerstrip_database_url",
        default=None,
        metavar="URL",
        help="PostgreSQL server and database to connect to, where powerstrip.testing creates "
        f"(and drops) its test databases; default SQLite. Env: {DATABASE_URL_ENV}.",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Read the database server once, before any test clears ``POWERSTRIP_*``."""
    server = config.getoption("powerstrip_database_url") or os.environ.get(DATABASE_URL_ENV)
    if server and not server.startswith("postgresql"):
        raise pytest.UsageError(
            f"{_DATABASE_OPTION} / {DATABASE_URL_ENV} must be a PostgreSQL URL such as "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    config.stash[_SERVER] = server or None


@pytest.fixture(scope="session")
def _powerstrip_databases(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    databases = Databases(pytestconfig.stash[_SERVER], tmp_path_factory.mktemp("powerstrip"))
    yield databases
    databases.close()


@pytest.fixture
def powerstrip_plugins() -> Sequence[str]:
    """The plugins ``powerstrip_app`` enables: override it in your ``conftest.py``."""
    pytest.fail(
        "powerstrip_app needs the plugins under test: define a powerstrip_plugins fixture "
        "returning their names (e.g. ['hello']) in your conftest.py",
        pytrace=False,
    )


@pytest.fixture
def powerstrip_config() -> Mapping[str, Any]:
    """Configuration overrides for ``powerstrip_app`` (override it)."""
    return {}


@pytest.fixture
def powerstrip_modules() -> Sequence[InjectorModule]:
    """Extra injector modules for ``powerstrip_app``, installed last (override it)."""
    return []


@pytest.fixture
def powerstrip_make_app(
    _powerstrip_databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppFactory]:
    """Build apps with only the named plugins; every database write is undone afterwards."""
    for name in list(os.environ):
        if name.startswith("POWERSTRIP_"):
            monkeypatch.delenv(name)
    instance = tmp_path / "powerstrip-instance"
    instance.mkdir(exist_ok=True)
    databases = _powerstrip_databases
    joined: dict[str, Connection] = {}  # apps of one test on one database share its transaction
    with ExitStack() as cleanup:

        def make_app(
            *plugins: str,
            config: Mapping[str, Any] | None = None,
            modules: Sequence[InjectorModule] = (),
            migrated: bool = True,
        ) -> Flask:
            from app import create_app  # noqa: PLC0415 - the host, loaded by the first app

            taken = sorted(set(_KIT_KEYS) & set(config or {}))
            if taken:
                raise ValueError(
                    f"{', '.join(taken)}: the kit sets these; name the plugins as arguments "
                    f"(the database: {_DATABASE_OPTION})"
                )
            url = (
                databases.shared(plugins) if migrated else cleanup.enter_context(databases.fresh())
            )
            app = create_app(
                {
                    "ENVIRONMENT": "testing",
                    "INSTANCE_PATH": str(instance),
                    **(config or {}),
                    "PLUGINS": list(plugins),
                    "DATABASE_URL": url,
                },
                modules=modules,
                authenticators=[_TestCaller],
            )
            database: Database = app.extensions[_DATABASE]
            cleanup.callback(database.engine.dispose)
            if migrated:
                if url not in databases.migrated:
                    upgrade(app)
                    databases.migrated.add(url)
                if url not in joined:
                    joined[url] = cleanup.enter_context(rolled_back(database.engine))
                database.use_connection(joined[url])
            return app

        yield make_app


@pytest.fixture
def powerstrip_app(
    powerstrip_make_app: AppFactory,
    powerstrip_plugins: Sequence[str],
    powerstrip_config: Mapping[str, Any],
    powerstrip_modules: Sequence[InjectorModule],
) -> Flask:
    """The app of ``powerstrip_plugins``, ``powerstrip_config`` and ``powerstrip_modules``."""
    return powerstrip_make_app(
        *powerstrip_plugins, config=powerstrip_config, modules=powerstrip_modules
    )


@pytest.fixture
def powerstrip_client(powerstrip_app: Flask) -> FlaskClient:
    """An anonymous test client of ``powerstrip_app``."""
    return powerstrip_app.test_client()


@pytest.fixture
def powerstrip_caller(powerstrip_app: Flask) -> CallerFactory:
    """Test clients of ``powerstrip_app`` authenticated as a caller with the given scopes."""

    def caller(*scopes: str, subject: str = "test-user", kind: str = "user") -> FlaskClient:
        return caller_client(powerstrip_app, *scopes, subject=subject, kind=kind)

    return caller


@pytest.fixture
def powerstrip_events(powerstrip_app: Flask) -> EventRecorder:
    """The event recorder of ``powerstrip_app``."""
    return record_events(powerstrip_app)


@pytest.fixture
def powerstrip_runner(powerstrip_app: Flask) -> FlaskCliRunner:
    """A CLI runner of ``powerstrip_app``: ``invoke(args=[plugin, command, ...])``."""
    return powerstrip_app.test_cli_runner()


@pytest.fixture
def plugin_conformance(powerstrip_make_app: AppFactory) -> PluginConformance:
    """Run the conformance suite on a plugin: fails the test listing what does not conform."""

    def check(
        name: str,
        *,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        modules: Sequence[InjectorModule] = (),
    ) -> ConformanceReport:
        report = run(powerstrip_make_app, name, plugins=plugins, config=config, modules=modules)
        if report.failures:
            pytest.fail(report.summary(), pytrace=False)
        return report

    return check


def caller_client(
    app: Flask, *scopes: str, subject: str = "test-user", kind: str = "user"
) -> FlaskClient:
    """A test client of ``app`` (built by the kit) whose requests carry the test credential."""
    client = app.test_client()
    credential = json.dumps({"subject": subject, "kind": kind, "scopes": sorted(scopes)})
    client.environ_base[f"HTTP_{TEST_CALLER_HEADER.upper().replace('-', '_')}"] = credential
    return client


def record_events(app: Flask) -> EventRecorder:
    """The recorder of ``app``'s event bus, attached the first time (record before acting)."""
    recorder: EventRecorder | None = app.extensions.get(_RECORDER)
    if recorder is None:
        recorder = app.extensions[_RECORDER] = EventRecorder()
        bus: EventBus = app.extensions[INJECTOR].get(EventBus)
        publish = bus.publish
        published = recorder.published

        def recording(event: object) -> None:
            published.append(event)
            publish(event)

        bus.publish = recording  # type: ignore[method-assign]  # this app's bus only
        bus.subscribe(object, recorder.delivered.append)
    return recorder


def metric(app: Flask, name: str, **labels: str) -> float | None:
    """The value of one sample of ``app``'s Prometheus metrics, or None if it has none yet:
    ``metric(app, "hello_greetings_stored_total")``, ``metric(app, name, status="2xx")``."""
    measured = app.extensions.get(_METRICS)
    if measured is None:
        raise ValueError("this app's metrics are off (METRICS_ENABLED = false)")
    value: float | None = measured.registry.get_sample_value(name, labels)
    return value
