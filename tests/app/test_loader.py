"""Plugin discovery and every failure mode, with real installed fixture distributions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app import PluginError, create_app
from tests.plugin_fixtures import HELLO_VIEW, Installer, plugin_source


def build(instance_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return create_app({"ENVIRONMENT": "testing", "INSTANCE_PATH": str(instance_path), **overrides})


def states(app) -> dict[str, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return {n: (r.state, r.reason) for n, r in app.extensions["powerstrip.plugins"].items()}


def test_installed_plugin_is_mounted_tagged_and_documented(
    installer: Installer, instance_path: Path
) -> None:
    installer.install("greeter")
    app = build(instance_path)
    client = app.test_client()
    assert client.get("/api/v1/greeter/hello").get_json() == {"plugin": "greeter"}
    spec = client.get("/api/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/greeter/hello"]["get"]
    assert operation["tags"] == ["greeter"]
    assert operation["operationId"] == "greeter_hello_get"
    assert {"name": "greeter", "description": "The greeter plugin"} in spec["tags"]
    record = app.extensions["powerstrip.plugins"]["greeter"]
    assert (record.state, record.version, record.routes) == ("enabled", "1.2.3", 1)


def test_url_prefix_is_configurable(installer: Installer, instance_path: Path) -> None:
    installer.install("greeter")
    client = build(instance_path, PLUGIN_URL_PREFIX="/v2").test_client()
    assert client.get("/v2/greeter/hello").status_code == 200


def test_disabled_plugin_is_never_imported(installer: Installer, instance_path: Path) -> None:
    package = installer.install("broken", "raise RuntimeError('must not be imported')\n")
    app = build(instance_path, PLUGINS_DISABLED=["broken"])
    assert states(app)["broken"] == ("disabled", "listed in PLUGINS_DISABLED")
    assert package not in sys.modules


def test_allow_list_disables_the_rest(installer: Installer, instance_path: Path) -> None:
    package = installer.install("other", "raise RuntimeError('must not be imported')\n")
    app = build(instance_path, PLUGINS=["health"])
    assert states(app)["other"] == ("disabled", "not listed in PLUGINS")
    assert states(app)["health"][0] == "enabled"
    assert package not in sys.modules


def test_allow_list_naming_a_missing_plugin_fails(instance_path: Path) -> None:
    with pytest.raises(PluginError, match=r"^plugin 'ghost': listed in PLUGINS but not installed$"):
        build(instance_path, PLUGINS=["health", "ghost"])


def test_import_error_strict_fails_with_one_line(installer: Installer, instance_path: Path) -> None:
    installer.install("broken", "raise RuntimeError('boom at import')\n")
    with pytest.raises(PluginError) as caught:
        build(instance_path)
    assert str(caught.value) == "plugin 'broken': import failed: RuntimeError: boom at import"


def test_import_error_lenient_skips_and_reports(installer: Installer, instance_path: Path) -> None:
    installer.install("broken", "raise RuntimeError('boom at import')\n")
    app = build(instance_path, PLUGINS_STRICT=False)
    assert states(app)["broken"] == ("failed", "import failed: RuntimeError: boom at import")
    response = app.test_client().get("/api/v1/health/ready")
    assert response.status_code == 503
    assert response.get_json()["plugins"]["broken"]["state"] == "failed"
    assert app.test_client().get("/api/v1/health/live").status_code == 200


def test_not_a_plugin_value(installer: Installer, instance_path: Path) -> None:
    installer.install("odd", "plugin = {'name': 'odd'}\n")
    with pytest.raises(
        PluginError, match=r"plugin 'odd': entry point .* is a dict, not a powerstrip Plugin"
    ):
        build(instance_path)


def test_name_must_match_entry_point(installer: Installer, instance_path: Path) -> None:
    installer.install(
        "alias", "from powerstrip import Plugin\nplugin = Plugin(name='real', version='1')\n"
    )
    with pytest.raises(PluginError, match=r"plugin 'alias': declares name 'real'"):
        build(instance_path)


def test_invalid_name(installer: Installer, instance_path: Path) -> None:
    installer.install("Bad-Name")
    with pytest.raises(PluginError, match=r"plugin 'Bad-Name': invalid name"):
        build(instance_path)


def test_duplicate_name(installer: Installer, instance_path: Path) -> None:
    installer.install("twin", distribution="twin-one")
    installer.install("twin", distribution="twin-two")
    with pytest.raises(
        PluginError, match=r"plugin 'twin': duplicate name: provided by twin-one, twin-two"
    ):
        build(instance_path)


def test_incompatible_host_version(installer: Installer, instance_path: Path) -> None:
    package = installer.install(
        "future", "raise RuntimeError('not imported')\n", host_requirement=">=9"
    )
    with pytest.raises(
        PluginError,
        match=r"plugin 'future': incompatible host version: .* requires powerstrip>=9, "
        r"this host is 0\.1\.0",
    ):
        build(instance_path)
    assert package not in sys.modules


def test_missing_dependency_cascades_in_lenient_mode(
    installer: Installer, instance_path: Path
) -> None:
    installer.install("middle", requires=("ghost",))
    installer.install("top", requires=("middle",))
    app = build(instance_path, PLUGINS_STRICT=False)
    assert states(app)["middle"] == (
        "failed",
        "missing dependency: requires 'ghost', which is not installed",
    )
    assert states(app)["top"] == (
        "failed",
        "missing dependency: requires 'middle', which is failed",
    )
    assert app.test_client().get("/api/v1/top/hello").status_code == 404


def test_missing_dependency_strict(installer: Installer, instance_path: Path) -> None:
    installer.install("middle", requires=("ghost",))
    with pytest.raises(PluginError, match=r"plugin 'middle': missing dependency: requires 'ghost'"):
        build(instance_path)


def test_dependency_cycle(installer: Installer, instance_path: Path) -> None:
    installer.install("alpha", requires=("beta",))
    installer.install("beta", requires=("alpha",))
    installer.install("gamma", requires=("health",))
    app = build(instance_path, PLUGINS_STRICT=False)
    assert states(app)["alpha"][0] == "failed"
    assert "dependency cycle" in (states(app)["alpha"][1] or "")
    assert states(app)["gamma"] == ("enabled", None)


def test_requires_orders_loading(installer: Installer, instance_path: Path) -> None:
    installer.install("zeta")
    installer.install("able", requires=("zeta",))
    app = build(instance_path)
    assert states(app)["able"] == ("enabled", None)


GREETER = """
@runtime_checkable
class Greeter(Protocol):
    def greet(self) -> str: ...

class English:
    def greet(self) -> str:
        return "hello"

def configure(binder):
    binder.bind(Greeter, to=English())

@blp.route("/hello")
@blp.response(200)
def hello(greeter: Greeter):
    return {{"text": greeter.greet()}}
"""
MISSING_BINDING = plugin_source("needy", GREETER)
BOUND = plugin_source("needy", GREETER, modules="[configure]")


def test_missing_binding_fails_at_startup(installer: Installer, instance_path: Path) -> None:
    installer.install("needy", MISSING_BINDING)
    with pytest.raises(
        PluginError,
        match=r"plugin 'needy': missing DI binding: view needy.hello needs greeter: Greeter",
    ):
        build(instance_path)


def test_missing_binding_lenient_rebuilds_without_the_plugin(
    installer: Installer, instance_path: Path
) -> None:
    installer.install("needy", MISSING_BINDING)
    installer.install("fine")
    app = build(instance_path, PLUGINS_STRICT=False)
    assert states(app)["needy"][0] == "failed"
    client = app.test_client()
    assert client.get("/api/v1/needy/hello").status_code == 404
    assert client.get("/api/v1/fine/hello").status_code == 200


def test_bound_service_is_injected(installer: Installer, instance_path: Path) -> None:
    installer.install("needy", BOUND)
    response = build(instance_path).test_client().get("/api/v1/needy/hello")
    assert response.get_json() == {"text": "hello"}


def test_service_is_injected_into_class_based_view(
    installer: Installer, instance_path: Path
) -> None:
    body = GREETER.replace(
        """@blp.route("/hello")
@blp.response(200)
def hello(greeter: Greeter):
    return {{"text": greeter.greet()}}""",
        """@blp.route("/items/<int:item_id>")
class Item(MethodView):
    @inject
    def __init__(self, greeter: Greeter):
        self.greeter = greeter

    @blp.response(200)
    def get(self, item_id: int):
        return {{"text": self.greeter.greet(), "id": item_id}}""",
    )
    installer.install("needy", plugin_source("needy", body, modules="[configure]"))
    response = build(instance_path).test_client().get("/api/v1/needy/items/7")
    assert response.get_json() == {"text": "hello", "id": 7}


def test_missing_binding_in_class_based_view(installer: Installer, instance_path: Path) -> None:
    body = """
@runtime_checkable
class Store(Protocol):
    def get(self) -> str: ...

@blp.route("/items")
class Items(MethodView):
    @inject
    def __init__(self, store: Store):
        self.store = store

    @blp.response(200)
    def get(self):
        return []
"""
    installer.install("needy", plugin_source("needy", body))
    with pytest.raises(
        PluginError, match=r"plugin 'needy': missing DI binding: view needy.Items needs store"
    ):
        build(instance_path)


def test_service_asked_for_by_a_view_method_is_rejected(
    installer: Installer, instance_path: Path
) -> None:
    body = """
class Greeter:
    def greet(self) -> str:
        return "hello"

@blp.route("/items/<int:item_id>")
class Item(MethodView):
    @blp.arguments(ma.Schema, location="query")
    @blp.response(200)
    def get(self, query, greeter: Greeter, item_id: int):
        return {{"text": greeter.greet()}}
"""
    installer.install("needy", plugin_source("needy", body))
    with pytest.raises(
        PluginError,
        match=r"plugin 'needy': view needy.Item.get takes greeter, but flask-injector injects "
        r"class-based views only through an @inject __init__",
    ):
        build(instance_path)


def test_broken_injector_module(installer: Installer, instance_path: Path) -> None:
    code = BOUND.replace("binder.bind(Greeter, to=English())", "raise ValueError('bad module')")
    installer.install("needy", code)
    with pytest.raises(
        PluginError, match=r"plugin 'needy': injector module failed: ValueError: bad module"
    ):
        build(instance_path)


def test_async_view_with_injection_is_rejected(installer: Installer, instance_path: Path) -> None:
    installer.install("needy", BOUND.replace("def hello(greeter", "async def hello(greeter"))
    with pytest.raises(
        PluginError, match=r"plugin 'needy': view needy.hello is async with injected arguments"
    ):
        build(instance_path)


def test_init_every_request_false_is_rejected(installer: Installer, instance_path: Path) -> None:
    body = """
@blp.route("/items")
class Items(MethodView):
    init_every_request = False

    @blp.response(200)
    def get(self):
        return []
"""
    installer.install("views", plugin_source("views", body))
    with pytest.raises(
        PluginError, match=r"plugin 'views': view views.Items sets init_every_request = False"
    ):
        build(instance_path)


def test_a_conditional_write_without_a_precondition_is_rejected(
    installer: Installer, instance_path: Path
) -> None:
    body = """
from powerstrip import conditional


@blp.route("/items/<int:item_id>", methods=["GET", "DELETE"])
@blp.response(204)
@conditional
def item(item_id):
    return None
"""
    installer.install("views", plugin_source("views", body))
    with pytest.raises(
        PluginError,
        match=r"plugin 'views': view views.item is @conditional and answers DELETE but takes no "
        r"Precondition parameter",
    ):
        build(instance_path)


def test_route_collision(installer: Installer, instance_path: Path) -> None:
    body = """
@blp.route("")
@blp.response(200)
def page():
    return {{}}
"""
    installer.install("docs", plugin_source("docs", body))
    with pytest.raises(
        PluginError, match=r"plugin 'docs': route collision: GET /api/docs already exists"
    ):
        build(instance_path, PLUGIN_URL_PREFIX="/api")


def test_plugin_commands_and_setup_hook(installer: Installer, instance_path: Path) -> None:
    body = (
        HELLO_VIEW
        + """
commands = click.Group("tools", help="Greeter tools.")

@commands.command("shout")
@click.argument("word")
def shout(word):
    click.echo(word.upper())

def setup(context):
    context.app.extensions["greeter.setup"] = context.settings
"""
    )
    installer.install("greeter", plugin_source("greeter", body, commands="commands", setup="setup"))
    app = build(instance_path)
    assert "greeter.setup" in app.extensions
    assert app.extensions["greeter.setup"] is None  # the plugin has no settings
    result = app.test_cli_runner().invoke(args=["greeter", "shout", "hi"])
    assert result.exit_code == 0, result.output
    assert result.output == "HI\n"


SETTINGS = """
from dataclasses import dataclass

@dataclass(frozen=True)
class GreeterSettings:
    GREETING: str
    TIMES: int
    API_TOKEN: str

class GreeterSettingsSchema(ma.Schema):
    GREETING = ma.fields.String(load_default="Hello")
    TIMES = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))
    API_TOKEN = ma.fields.String(required=True, metadata={{"secret": True}})

    @ma.post_load
    def build(self, data, **kwargs):
        return GreeterSettings(**data)

@blp.route("/hello")
@blp.response(200)
def hello(settings: GreeterSettings):
    return {{"text": " ".join([settings.GREETING] * settings.TIMES)}}
"""


def test_settings_from_environment_are_validated_and_injected(
    installer: Installer, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installer.install(
        "greeter", plugin_source("greeter", SETTINGS, settings="GreeterSettingsSchema")
    )
    monkeypatch.setenv("POWERSTRIP_GREETER__TIMES", "2")
    monkeypatch.setenv("POWERSTRIP_GREETER__API_TOKEN", "t0ken")
    app = build(instance_path)
    assert app.test_client().get("/api/v1/greeter/hello").get_json() == {"text": "Hello Hello"}
    settings = app.extensions["powerstrip.plugins"]["greeter"].settings
    assert (settings.GREETING, settings.TIMES, settings.API_TOKEN) == ("Hello", 2, "t0ken")


def test_settings_from_the_instance_file_table(installer: Installer, instance_path: Path) -> None:
    installer.install(
        "greeter", plugin_source("greeter", SETTINGS, settings="GreeterSettingsSchema")
    )
    (instance_path / "config.toml").write_text('[greeter]\ngreeting = "Hi"\napi_token = "x"\n')
    app = build(instance_path)
    assert app.test_client().get("/api/v1/greeter/hello").get_json() == {"text": "Hi"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"API_TOKEN": "x", "TIMEZ": 3},
            r"invalid settings: TIMEZ \(env POWERSTRIP_GREETER__TIMEZ\): unknown key",
        ),
        (
            {"API_TOKEN": "x", "TIMES": 0},
            r"invalid settings: TIMES \(env POWERSTRIP_GREETER__TIMES\): Must be greater",
        ),
        ({}, r"invalid settings: API_TOKEN \(env POWERSTRIP_GREETER__API_TOKEN\): Missing data"),
    ],
)
def test_invalid_settings_name_plugin_and_key(
    installer: Installer, instance_path: Path, section: dict[str, object], message: str
) -> None:
    installer.install(
        "greeter", plugin_source("greeter", SETTINGS, settings="GreeterSettingsSchema")
    )
    installer.install("fan", requires=("greeter",))
    with pytest.raises(PluginError, match=rf"^plugin 'greeter': {message}"):
        build(instance_path, greeter=section)
    app = build(instance_path, greeter=section, PLUGINS_STRICT=False)
    assert states(app)["greeter"][0] == "failed"
    assert states(app)["fan"] == (
        "failed",
        "missing dependency: requires 'greeter', which is failed",
    )


def test_settings_schema_must_build_an_object(installer: Installer, instance_path: Path) -> None:
    body = """
class RawSchema(ma.Schema):
    GREETING = ma.fields.String(load_default="Hello")
"""
    installer.install("greeter", plugin_source("greeter", HELLO_VIEW + body, settings="RawSchema"))
    with pytest.raises(PluginError, match=r"the schema must build an object with @post_load"):
        build(instance_path)


def test_section_for_a_plugin_without_settings(installer: Installer, instance_path: Path) -> None:
    installer.install("plain")
    with pytest.raises(
        PluginError, match=r"plugin 'plain': invalid settings: the plugin takes none, but COLOR set"
    ):
        build(instance_path, plain={"color": "red"})


def test_section_of_a_disabled_plugin_is_ignored(installer: Installer, instance_path: Path) -> None:
    installer.install("plain")
    app = build(instance_path, plain={"color": "red"}, PLUGINS_DISABLED=["plain"])
    assert states(app)["plain"][0] == "disabled"


ITEM_SCHEMA_VIEW = """
class ItemSchema(ma.Schema):
    {field} = ma.fields.String()

@blp.route("/items")
@blp.response(200, ItemSchema)
def items():
    return {{}}
"""


def test_schema_name_collision(installer: Installer, instance_path: Path) -> None:
    installer.install("alpha", plugin_source("alpha", ITEM_SCHEMA_VIEW.replace("{field}", "a")))
    installer.install("beta", plugin_source("beta", ITEM_SCHEMA_VIEW.replace("{field}", "b")))
    with pytest.raises(
        PluginError,
        match=r"^plugin 'beta': schema-name collision: 'Item' is already in the OpenAPI document",
    ):
        build(instance_path)
    app = build(instance_path, PLUGINS_STRICT=False)
    assert states(app)["beta"][0] == "failed"
    spec = app.test_client().get("/api/openapi.json").get_json()
    assert set(spec["components"]["schemas"]["Item"]["properties"]) == {"a"}
    assert "/api/v1/beta/items" not in spec["paths"]


def test_multiple_blueprints_of_one_plugin(installer: Installer, instance_path: Path) -> None:
    body = (
        HELLO_VIEW
        + """
other = Blueprint("other", __name__, url_prefix="/other")

@other.route("/ping")
@other.response(200)
def ping():
    return {{"pong": True}}
"""
    )
    code = plugin_source("multi", body).replace("blueprints=[blp]", "blueprints=[blp, other]")
    installer.install("multi", code)
    app = build(instance_path)
    client = app.test_client()
    assert client.get("/api/v1/multi/hello").status_code == 200
    assert client.get("/api/v1/multi/other/ping").get_json() == {"pong": True}
    spec = client.get("/api/openapi.json").get_json()
    assert spec["paths"]["/api/v1/multi/other/ping"]["get"]["tags"] == ["multi"]
    assert app.extensions["powerstrip.plugins"]["multi"].routes == 2


def test_operation_id_collision(installer: Installer, instance_path: Path) -> None:
    body = (
        HELLO_VIEW
        + """
@blp.route("/hi")
@blp.doc(operationId="hello_get")
@blp.response(200)
def hi():
    return {{}}
"""
    )
    installer.install("twice", plugin_source("twice", body))
    with pytest.raises(
        PluginError,
        match=r"^plugin 'twice': operationId collision: 'twice_hello_get' is already used by "
        r"plugin 'twice'$",
    ):
        build(instance_path)


def test_migrations_directory_must_exist(installer: Installer, instance_path: Path) -> None:
    missing = plugin_source("migrating", migrations="Path(__file__).parent / 'migrations'")
    installer.install("migrating", "from pathlib import Path\n" + missing)
    with pytest.raises(
        PluginError,
        match=r"^plugin 'migrating': migrations directory '.*migrations' does not exist$",
    ):
        build(instance_path)


def test_migrations_directory_is_recorded(installer: Installer, instance_path: Path) -> None:
    source = plugin_source("migrating", migrations="Path(__file__).parent")
    installer.install("migrating", "from pathlib import Path\n" + source)
    record = build(instance_path).extensions["powerstrip.plugins"]["migrating"]
    assert record.plugin.migrations.is_dir()


def test_a_schema_class_in_arguments_is_named_at_startup(
    installer: Installer, instance_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = """
class Query(ma.Schema):
    q = ma.fields.String()

@blp.route("/search")
@blp.arguments(Query, location="query")
@blp.response(200)
def search(query):
    return {{"q": query.get("q")}}

@blp.route("/found")
@blp.arguments(Query(), location="query")
@blp.response(200)
def found(query):
    return {{"q": query.get("q")}}

@blp.route("/items")
class Items(MethodView):
    @blp.arguments(Query, location="query")
    @blp.response(200)
    def get(self, query):
        return []
"""
    installer.install("views", plugin_source("views", body))
    app = build(instance_path)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warned = [
        line["message"]
        for line in lines
        if line["logger"] == "app.composition" and "plugin views" in line["message"]
    ]
    assert sorted(warned) == [
        "plugin views: view views.Items.get takes @arguments(Query), a class, which is built "
        "on every request; pass an instance, Query()",
        "plugin views: view views.search takes @arguments(Query), a class, which is built on "
        "every request; pass an instance, Query()",
    ]
    assert app.test_client().get("/api/v1/views/search?q=a").get_json() == {"q": "a"}
