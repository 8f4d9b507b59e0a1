"""The loader's checks one by one, through ``discover`` and its steps, without building an app:
every reason's exact text, every state (``make mutation`` runs these against every mutant)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import marshmallow as ma
import pytest

from app.config import StartupError
from app.loader import (
    PluginError,
    PluginRecord,
    Registry,
    _authenticator_problem,
    _Distribution,
    _Filters,
    _import,
    _incompatibility,
    _order,
    _refusal,
    _settings,
    discover,
)
from powerstrip import Plugin
from powerstrip.auth import Principal
from powerstrip.contracts import PluginInfo
from powerstrip.plugin import settings_environment
from tests.plugin_fixtures import Installer

HERE = __name__


@dataclass
class Greeting:
    text: str


class GreetingSchema(ma.Schema):
    TEXT = ma.fields.String(load_default="hi")
    ENVIRONMENT = ma.fields.String(load_default=None)

    @ma.post_load
    def build(self, data: dict[str, Any], **_: Any) -> Greeting:
        return Greeting(f"{data['TEXT']} in {settings_environment()}")


class NestedSchema(ma.Schema):
    LIMITS = ma.fields.Nested(GreetingSchema)


class DictSchema(ma.Schema):
    TEXT = ma.fields.String()


class GoodAuthenticator:
    credentials: ClassVar[tuple[str, ...]] = ("Authorization", "X-Key")

    def authenticate(self, request: object) -> Principal | None:
        return Principal.of("x") if request else None


def authenticator(**attributes: object) -> type:
    return type("Odd", (), {"authenticate": GoodAuthenticator.authenticate, **attributes})


GREETER = Plugin(name="greeter", version="2.0", settings=GreetingSchema)
NOT_A_PLUGIN = {"name": "odd"}
MISNAMED = Plugin(name="real", version="1")
NO_MIGRATIONS = Plugin(name="migrating", version="1", migrations=Path("/nonexistent/migrations"))
BAD_AUTHENTICATOR = Plugin(name="auth", version="1", authenticators=[authenticator()])  # type: ignore[list-item]


def entry_point(name: str, attribute: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name, f"{HERE}:{attribute}", "powerstrip.plugins")


def plugin(name: str, *requires: str, **fields: Any) -> Plugin:
    return Plugin(name=name, version="1", requires=requires, **fields)


def enabled(name: str, *requires: str) -> PluginRecord:
    return PluginRecord(name, "dist", "1", "enabled", plugin=plugin(name, *requires))


def filters(**overrides: Any) -> _Filters:
    values: dict[str, Any] = {
        "host_version": "1.0",
        "allow": None,
        "disabled": frozenset(),
        "excluded": {},
        "sections": {},
        "environment": "production",
    }
    return _Filters(**{**values, **overrides})


def test_plugin_error_names_the_plugin_and_the_cause() -> None:
    error = PluginError("greeter", "import failed")
    assert isinstance(error, StartupError)
    assert str(error) == "plugin 'greeter': import failed"
    assert (error.plugin, error.cause) == ("greeter", "import failed")


def test_a_record_tells_its_plugin_info() -> None:
    scoped = plugin("tasks", scopes={"tasks:read": "Read"}, grants={"user": ["tasks:read"]})
    record = PluginRecord("tasks", "dist", "1.0", "enabled", plugin=scoped)
    assert record.info() == PluginInfo(
        "tasks", "1.0", "enabled", None, {"tasks:read": "Read"}, {"user": ("tasks:read",)}
    )
    bare = PluginRecord("ghost", None, None, "failed", reason="gone")
    assert bare.info() == PluginInfo("ghost", None, "failed", "gone", {}, {})
    assert (bare.routes, bare.blocked_by, bare.module, bare.settings) == (0, None, None, None)


def test_rate_limit_exemption_comes_from_the_plugin() -> None:
    assert not PluginRecord("a", None, None, "failed").plugin_exempt
    assert not enabled("a").plugin_exempt
    exempt = PluginRecord("a", None, None, "enabled", plugin=plugin("a", rate_limit_exempt=True))
    assert exempt.plugin_exempt


def test_with_routes_and_failed_return_changed_copies() -> None:
    record = enabled("a")
    assert record.with_routes(3).routes == 3
    assert record.routes == 0
    failed = record.with_routes(3).failed("broken", blocked_by="b")
    assert failed == PluginRecord("a", "dist", "1", "failed", "broken", None, None, 3, "b", None)
    assert record.failed("broken").blocked_by is None


def test_the_registry_lists_all_by_name_and_the_enabled_in_order() -> None:
    records = {"b": enabled("b"), "a": enabled("a"), "c": enabled("c").failed("x")}
    registry = Registry.of(records, ["b", "a"])
    assert [info.name for info in registry.plugins()] == ["a", "b", "c"]
    assert [info.name for info in registry.enabled()] == ["b", "a"]


def test_a_distribution_is_read_from_the_entry_points_metadata(installer: Installer) -> None:
    installer.install("greeter", distribution="greeter-dist", host_requirement=">=0.1")
    (found,) = list(metadata.entry_points(group="powerstrip.plugins", name="greeter"))
    assert _Distribution.of(found) == _Distribution("greeter-dist", "1.0", ("powerstrip>=0.1",))
    installer.install("plain", distribution="plain-dist", host_requirement=None)
    (plain,) = list(metadata.entry_points(group="powerstrip.plugins", name="plain"))
    assert _Distribution.of(plain) == _Distribution("plain-dist", "1.0", ())
    assert _Distribution.of(entry_point("greeter", "GREETER")) is None


def dist(*requires: str, name: str = "greeter-dist") -> _Distribution:
    return _Distribution(name, "3.0", requires)


def test_host_version_requirements() -> None:
    assert _incompatibility(None, "1.0") is None
    assert _incompatibility(dist(), "1.0") is None
    assert _incompatibility(dist("powerstrip>=1.0"), "1.0") is None
    assert _incompatibility(dist("powerstrip>=1.0"), "1.1rc1") is None  # prereleases count
    assert _incompatibility(dist("powerstrip>=2", name="PowerStrip"), "1.0") is None  # the host
    assert _incompatibility(dist("not a requirement ((", "powerstrip>=2"), "1.0") is not None
    assert _incompatibility(dist("other>=2", "PowerStrip>=2"), "1.0") == (
        "incompatible host version: greeter-dist 3.0 requires powerstrip>=2, this host is 1.0"
    )
    assert _incompatibility(dist("other>=2"), "1.0") is None
    assert _incompatibility(dist('powerstrip>=2; extra == "dev"'), "1.0") is None
    assert _incompatibility(dist('powerstrip>=2; python_version >= "3"'), "1.0") is not None
    assert _incompatibility(dist("powerstrip>=1", "powerstrip<0.5"), "1.0") == (
        "incompatible host version: greeter-dist 3.0 requires powerstrip<0.5, this host is 1.0"
    )


def test_import_reasons() -> None:
    assert _import(entry_point("greeter", "GREETER")) is GREETER
    assert _import(metadata.EntryPoint("x", "tests.no_such_module:plugin", "g")) == (
        "import failed: ModuleNotFoundError: No module named 'tests.no_such_module'"
    )
    assert _import(entry_point("odd", "NOT_A_PLUGIN")) == (
        f"entry point '{HERE}:NOT_A_PLUGIN' is a dict, not a powerstrip Plugin"
    )
    assert _import(entry_point("alias", "MISNAMED")) == (
        "declares name 'real' but its entry point is named 'alias'"
    )
    assert _import(entry_point("migrating", "NO_MIGRATIONS")) == (
        "migrations directory '/nonexistent/migrations' does not exist"
    )
    assert _import(entry_point("auth", "BAD_AUTHENTICATOR")) == (
        "authenticator Odd must name the headers carrying its credentials: "
        'credentials = ("Authorization",)'
    )


def test_an_existing_migrations_directory_is_accepted(tmp_path: Path) -> None:
    migrating = plugin("migrating", migrations=tmp_path)
    assert _settings(migrating, {}, "testing") is None
    assert _authenticator_problem(migrating) is None


@pytest.mark.parametrize(
    "odd",
    [
        GoodAuthenticator(),
        type("Odd", (), {"credentials": ("X",)}),
        type("Odd", (), {"credentials": ("X",), "authenticate": "not callable"}),
    ],
    ids=["instance", "no-method", "attribute"],
)
def test_an_authenticator_must_be_a_class_with_authenticate(odd: object) -> None:
    problem = _authenticator_problem(plugin("auth", authenticators=[GoodAuthenticator, odd]))
    assert problem is not None
    assert problem.startswith("authenticator ")
    assert problem.endswith(" is not a class with an authenticate(request) method")
    if isinstance(odd, type):
        assert problem == ("authenticator Odd is not a class with an authenticate(request) method")


@pytest.mark.parametrize(
    "credentials",
    [None, "Authorization", (), ("Authorization", ""), ("Authorization", 3), ["Authorization"]],
)
def test_an_authenticator_must_name_its_credential_headers(credentials: object) -> None:
    odd = authenticator(credentials=credentials)
    assert _authenticator_problem(plugin("auth", authenticators=[GoodAuthenticator, odd])) == (
        "authenticator Odd must name the headers carrying its credentials: "
        'credentials = ("Authorization",)'
    )


def test_a_well_formed_authenticator_passes() -> None:
    assert _authenticator_problem(plugin("auth", authenticators=[GoodAuthenticator])) is None
    assert _authenticator_problem(plugin("auth")) is None


def test_settings_are_validated_in_the_hosts_environment() -> None:
    assert _settings(GREETER, {"TEXT": "hello"}, "staging") == Greeting("hello in staging")
    assert _settings(GREETER, {}, "development") == Greeting("hi in development")
    assert settings_environment() == "production"  # reset after loading


def test_settings_problems_name_the_key_and_its_variable() -> None:
    assert _settings(GREETER, {"TEXTT": "x"}, "testing") == (
        "invalid settings: TEXTT (env POWERSTRIP_GREETER__TEXTT): unknown key; check the spelling"
    )
    assert _settings(GREETER, {"TEXT": 3}, "testing") == (
        "invalid settings: TEXT (env POWERSTRIP_GREETER__TEXT): Not a valid string."
    )
    assert settings_environment() == "production"
    nested = plugin("nested", settings=NestedSchema)
    assert _settings(nested, {"LIMITS": {"TEXT": 3}}, "testing") == (
        "invalid settings: LIMITS.TEXT (env POWERSTRIP_NESTED__LIMITS.TEXT): Not a valid string."
    )


def test_settings_without_a_schema() -> None:
    plain = plugin("plain")
    assert _settings(plain, {}, "testing") is None
    assert _settings(plain, {"COLOR": "red", "BACKGROUND": "blue"}, "testing") == (
        "invalid settings: the plugin takes none, but BACKGROUND, COLOR set"
    )


def test_a_settings_schema_must_build_an_object() -> None:
    assert _settings(plugin("bare", settings=DictSchema), {"TEXT": "x"}, "testing") == (
        "invalid settings: the schema must build an object with @post_load to be injected"
    )


def test_order_puts_requirements_first() -> None:
    records = {
        name: enabled(name, *needs)
        for name, needs in {
            "c": ("b",),
            "b": ("a",),
            "a": (),
            "d": ("a", "b"),
        }.items()
    }
    order = _order(records)
    assert order.index("a") < order.index("b") < order.index("c")
    assert order.index("b") < order.index("d")
    assert sorted(order) == ["a", "b", "c", "d"]
    assert all(record.state == "enabled" for record in records.values())


def test_order_fails_missing_and_cascades_failures() -> None:
    records = {
        "top": enabled("top", "middle"),
        "middle": enabled("middle", "ghost"),
        "off": PluginRecord("off", None, None, "disabled"),
        "user": enabled("user", "off"),
        "fine": enabled("fine"),
    }
    assert _order(records) == ["fine"]
    assert records["middle"].reason == (
        "missing dependency: requires 'ghost', which is not installed"
    )
    assert records["middle"].blocked_by is None
    assert records["top"].reason == "missing dependency: requires 'middle', which is failed"
    assert records["top"].blocked_by == "middle"
    assert records["user"].reason == "missing dependency: requires 'off', which is disabled"
    assert records["user"].blocked_by is None
    assert records["off"].state == "disabled"


def test_order_fails_every_plugin_of_a_cycle_and_what_needs_them() -> None:
    records = {
        "alpha": enabled("alpha", "beta"),
        "beta": enabled("beta", "alpha"),
        "gamma": enabled("gamma"),
        "delta": enabled("delta", "alpha"),
    }
    assert _order(records) == ["gamma"]
    for name in ("alpha", "beta"):
        assert records[name].state == "failed"
        assert records[name].reason is not None
        assert records[name].reason.startswith("dependency cycle: ")
        assert {"alpha", "beta"} <= set(records[name].reason.split(": ")[1].split(" -> "))
    assert records["delta"].reason == "missing dependency: requires 'alpha', which is failed"


def test_refusals_in_their_order(installer: Installer) -> None:
    greeter = [entry_point("greeter", "GREETER")]
    no_dist = None
    assert _refusal("greeter", greeter, no_dist, filters()) is None
    assert _refusal("greeter", greeter, no_dist, filters(disabled=frozenset({"greeter"}))) == (
        "disabled",
        "listed in PLUGINS_DISABLED",
    )
    assert _refusal(
        "greeter", greeter, no_dist, filters(allow=["greeter"], disabled=frozenset({"greeter"}))
    ) == ("disabled", "listed in PLUGINS_DISABLED")
    assert _refusal("greeter", greeter, no_dist, filters(allow=["other"])) == (
        "disabled",
        "not listed in PLUGINS",
    )
    assert _refusal("greeter", greeter, no_dist, filters(allow=["greeter"])) is None
    assert _refusal("greeter", greeter, no_dist, filters(allow=[])) == (
        "disabled",
        "not listed in PLUGINS",
    )
    assert _refusal("greeter", greeter * 2, no_dist, filters()) == (
        "failed",
        "duplicate name: provided by ?",
    )
    assert _refusal("Bad", greeter, no_dist, filters()) == (
        "failed",
        "invalid name: use 2-32 of a-z, 0-9 and _, starting with a letter",
    )
    assert _refusal("greeter", greeter, no_dist, filters(excluded={"greeter": "no routes"})) == (
        "failed",
        "no routes",
    )
    assert _refusal("greeter", greeter, dist("powerstrip>=2"), filters()) == (
        "failed",
        "incompatible host version: greeter-dist 3.0 requires powerstrip>=2, this host is 1.0",
    )


def test_discover_records_every_installed_plugin(installer: Installer) -> None:
    installer.install("greeter", distribution="greeter-dist")
    installer.install("off", "raise RuntimeError('never imported')\n")
    installer.install("broken", "raise RuntimeError('boom')\n")
    records, order = discover(
        host_version="0.1.0",
        allow=["greeter", "off", "broken", "ghost"],
        disabled=["off"],
    )
    assert order == ["greeter"]
    greeter = records["greeter"]
    assert (greeter.state, greeter.distribution, greeter.version) == (
        "enabled",
        "greeter-dist",
        "1.2.3",  # the plugin's own version, not its distribution's
    )
    assert greeter.plugin is not None
    assert greeter.plugin.name == "greeter"
    assert greeter.module is not None
    assert greeter.module.startswith("fixture_greeter_")
    assert greeter.settings is None
    assert (records["off"].state, records["off"].reason) == (
        "disabled",
        "listed in PLUGINS_DISABLED",
    )
    assert records["off"].version == "1.0"  # the distribution's, as it was never imported
    assert (records["broken"].state, records["broken"].reason) == (
        "failed",
        "import failed: RuntimeError: boom",
    )
    ghost = records["ghost"]
    assert (ghost.state, ghost.reason, ghost.distribution, ghost.version) == (
        "failed",
        "listed in PLUGINS but not installed",
        None,
        None,
    )
    assert "health" not in records or records["health"].state == "disabled"


def test_discover_validates_sections_and_reports_exclusions(installer: Installer) -> None:
    installer.install("greeter")
    installer.install("other")
    records, order = discover(
        host_version="0.1.0",
        allow=["greeter", "other"],
        disabled=(),
        sections={"greeter": {"COLOR": "red"}},
        excluded={"other": "route collision"},
        environment="testing",
    )
    assert order == []
    assert records["greeter"].reason == "invalid settings: the plugin takes none, but COLOR set"
    assert (records["other"].state, records["other"].reason) == ("failed", "route collision")


def test_discover_without_an_allow_list_enables_every_plugin(installer: Installer) -> None:
    installer.install("greeter")
    records, order = discover(host_version="0.1.0", allow=None, disabled=[])
    assert "greeter" in order
    assert records["greeter"].state == "enabled"
    assert all(record.reason != "not listed in PLUGINS" for record in records.values())
