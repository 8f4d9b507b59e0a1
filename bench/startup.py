"""Startup benchmark: Powerstrip's create_app() and `powerstrip plugins list` beside a bare app.

For 0 (first-party and installed plugins only), 10 and 50 generated plugins, it measures in
fresh processes, in the same run:

- create_app(): the time of the call alone (imports of the host itself excluded; imports of
  the plugins included), against a bare flask-smorest app that imports and registers the
  same blueprints;
- `powerstrip plugins list` wall time, against `flask --app <bare> routes` wall time.

It prints a Markdown table of medians and ratios. The target is a ratio of at most 1.5.
Usage: .venv/bin/python bench/startup.py [--repeat 7] [--counts 0,10,50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

PLUGIN = """
import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from powerstrip import Plugin

blueprint = Blueprint("{name}", __name__, description="Generated plugin {name}")


class {cls}Schema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    title = ma.fields.String(required=True)


class {cls}Service:
    def list(self):
        return []


@blueprint.route("/items")
class Items(MethodView):
    @blueprint.response(200, {cls}Schema(many=True))
    def get(self):
        return []

    @blueprint.arguments({cls}Schema)
    @blueprint.response(201, {cls}Schema)
    def post(self, item):
        return item


@blueprint.route("/items/<int:item_id>")
@blueprint.response(200, {cls}Schema)
def item(item_id: int, service: {cls}Service):
    return {{"id": item_id, "title": "x"}}


plugin = Plugin(name="{name}", version="1.0", description="Generated", blueprints=[blueprint])
"""

BARE = """
import importlib
from flask import Flask
from flask_smorest import Api

BLUEPRINTS = {blueprints!r}


def create_app():
    app = Flask("bare")
    app.config.update(API_TITLE="bare", API_VERSION="1", OPENAPI_VERSION="3.1.0",
                      OPENAPI_URL_PREFIX="/api", OPENAPI_JSON_PATH="openapi.json")
    api = Api(app)
    for module, attribute, name in BLUEPRINTS:
        blueprint = getattr(importlib.import_module(module), attribute)
        api.register_blueprint(blueprint, url_prefix=f"/api/v1/{{name}}", name=name)
    return app
"""

# Both sides freeze what their imports allocated (gc.freeze, as a preloading gunicorn master
# does before forking), so a full collection of import garbage does not land at random in
# one side's timing: without it one 10-15 ms gen-2 pass decides the ratio at small counts.
TIME_POWERSTRIP = """
import gc, time, app
gc.collect()
gc.freeze()
start = time.perf_counter()
app.create_app()
print(time.perf_counter() - start)
"""

# The plugin modules import the SDK (`powerstrip`), so both sides import it and the host before
# the clock starts.
TIME_BARE = """
import gc, time, app, powerstrip, flask, flask_smorest, bare_app
gc.collect()
gc.freeze()
start = time.perf_counter()
bare_app.create_app()
print(time.perf_counter() - start)
"""


def first_party_blueprints() -> list[tuple[str, str, str]]:
    """The blueprints of the plugins installed in this environment, for the bare app."""
    known = {
        "health": ("plugins.health.views", "blueprint"),
        "accounts": ("plugins.accounts.views", "blueprint"),
        "tasks": ("plugins.tasks.views", "blueprint"),
        "hello": ("powerstrip_hello.views", "blueprint"),
    }
    installed = {ep.name for ep in metadata.entry_points(group="powerstrip.plugins")}
    return [
        (module, attribute, name)
        for name, (module, attribute) in known.items()
        if name in installed
    ]


def generate(site: Path, count: int) -> list[tuple[str, str, str]]:
    blueprints = first_party_blueprints()
    for index in range(count):
        name = f"gen{index:03d}"
        package = site / f"bench_{name}"
        package.mkdir()
        (package / "__init__.py").write_text(PLUGIN.format(name=name, cls=name.capitalize()))
        info = site / f"bench_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: bench-{name}\nVersion: 1.0\n"
            "Requires-Dist: powerstrip>=0.1\n"
        )
        (info / "entry_points.txt").write_text(
            f"[powerstrip.plugins]\n{name} = bench_{name}:plugin\n"
        )
        blueprints.append((f"bench_{name}", "blueprint", name))
    (site / "bare_app.py").write_text(textwrap.dedent(BARE.format(blueprints=blueprints)))
    return blueprints


def run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return time.perf_counter() - start, result.stdout


def measure(count: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        instance = Path(tmp) / "instance"
        instance.mkdir()
        blueprints = generate(site, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POWERSTRIP_")}
        env |= {
            "PYTHONPATH": str(site),
            "POWERSTRIP_ENVIRONMENT": "development",
            "POWERSTRIP_INSTANCE_PATH": str(instance),
            "POWERSTRIP_LOG_LEVEL": "WARNING",
        }
        python = str(BIN / "python")
        samples: dict[str, list[float]] = {"app": [], "bare": [], "list": [], "routes": []}
        for _ in range(repeat):
            samples["app"].append(float(run([python, "-c", TIME_POWERSTRIP], env)[1]))
            samples["bare"].append(float(run([python, "-c", TIME_BARE], env)[1]))
            wall, out = run([str(BIN / "powerstrip"), "plugins", "list", "--json"], env)
            samples["list"].append(wall)
            enabled = sum(row["state"] == "enabled" for row in json.loads(out))
            assert enabled == len(blueprints), (enabled, len(blueprints))
            samples["routes"].append(
                run([str(BIN / "flask"), "--app", "bare_app", "routes"], env)[0]
            )
        return {key: statistics.median(values) for key, values in samples.items()} | {
            "blueprints": len(blueprints)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--counts", default="0,10,50")
    args = parser.parse_args()
    print(
        "| plugins (blueprints) | create_app ms | bare app ms | ratio "
        "| plugins list ms | bare routes ms | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for count in (int(c) for c in args.counts.split(",")):
        m = measure(count, args.repeat)
        print(
            f"| {count} generated ({m['blueprints']:.0f}) "
            f"| {m['app'] * 1000:.1f} | {m['bare'] * 1000:.1f} "
            f"| {m['app'] / m['bare']:.2f}x | {m['list'] * 1000:.0f} | {m['routes'] * 1000:.0f} "
            f"| {m['list'] / m['routes']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
