"""``powerstrip plugins new``: a plugin project in the documented shape, lint- and type-clean.

Its generated tests run in ``tests/test_scaffold_install.py``, in a fresh environment.
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from click.testing import CliRunner, Result

from app.plugins_cli import plugins
from powerstrip.scaffold import (
    Scaffold,
    host_range,
    installed_plugins,
    local_project,
    new_name_problem,
    render,
    template_files,
    tree,
)

ROOT = Path(__file__).resolve().parents[2]
REVISION = "0123456789ab"
CREATED = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LONGEST_NAME = "abcdefghijklmnopqrstuvwxyzabcdef"  # 32 characters, CamelCase as long
FILES = [
    ".gitignore",
    "README.md",
    "powerstrip_demo/__init__.py",
    "powerstrip_demo/cli.py",
    f"powerstrip_demo/migrations/{REVISION}_create_items.py",
    "powerstrip_demo/models.py",
    "powerstrip_demo/module.py",
    "powerstrip_demo/py.typed",
    "powerstrip_demo/repository.py",
    "powerstrip_demo/schemas.py",
    "powerstrip_demo/service.py",
    "powerstrip_demo/settings.py",
    "powerstrip_demo/views.py",
    "pyproject.toml",
    "tests/conftest.py",
    "tests/test_cli.py",
    "tests/test_conformance.py",
    "tests/test_service.py",
    "tests/test_settings.py",
    "tests/test_views.py",
]
FILES_TREE = [
    ".gitignore",
    "README.md",
    "powerstrip_demo/",
    "  __init__.py",
    "  cli.py",
    "  migrations/",
    f"    {REVISION}_create_items.py",
    "  models.py",
    "  module.py",
    "  py.typed",
    "  repository.py",
    "  schemas.py",
    "  service.py",
    "  settings.py",
    "  views.py",
    "pyproject.toml",
    "tests/",
    "  conftest.py",
    "  test_cli.py",
    "  test_conformance.py",
    "  test_service.py",
    "  test_settings.py",
    "  test_views.py",
]
INVALID = "invalid name: use 2-32 of a-z, 0-9 and _, starting with a letter"
RESERVED = "reserved name: host and host_... name the host's tables"


def scaffold(name: str = "demo", host_project: Path | None = None) -> Scaffold:
    return Scaffold(name, "0.1.0", host_project, revision=REVISION, created=CREATED)


def new(*args: str) -> Result:
    return CliRunner().invoke(plugins, ["new", *args])


def files_under(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): path.read_text()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, rendered once for the (slower) lint and type checks."""
    target = tmp_path_factory.mktemp("scaffold") / "powerstrip-demo"
    render(scaffold(), target)
    return target


# Names


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Demo", INVALID),
        ("d", INVALID),
        ("1demo", INVALID),
        ("de-mo", INVALID),
        (LONGEST_NAME + "x", INVALID),
        ("host", RESERVED),
        ("host_x", RESERVED),
        ("tasks", "an installed plugin has this name (distribution powerstrip)"),
    ],
)
def test_refuses_a_name_the_host_would_refuse(name: str, problem: str) -> None:
    assert new_name_problem(name, installed_plugins()) == problem


@pytest.mark.parametrize("name", ["demo", "hostel", "my_plugin2", LONGEST_NAME])
def test_accepts_a_valid_name(name: str) -> None:
    assert new_name_problem(name, {}) is None


def test_reads_the_installed_plugins_names() -> None:
    assert {"health", "accounts", "tasks"} <= installed_plugins().keys()
    assert installed_plugins()["tasks"] == "powerstrip"


def test_command_refuses_a_bad_name_in_one_line(tmp_path: Path) -> None:
    result = new("tasks", "--directory", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: Invalid value for 'NAME': "
        "an installed plugin has this name (distribution powerstrip)"
    )
    assert not (tmp_path / "x").exists()


# The target directory


def test_refuses_a_non_empty_directory_and_leaves_it_untouched(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    (target / "powerstrip_demo").mkdir(parents=True)
    (target / "README.md").write_text("my own notes\n")
    before = files_under(target)
    result = new("demo", "--directory", str(target))
    assert result.exit_code == 1
    assert result.output == f"Error: {target} already exists and is not an empty directory\n"
    assert files_under(target) == before
    assert sorted(tmp_path.iterdir()) == [target]  # no temporary directory left behind


def test_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(FileExistsError, match="already exists and is not an empty directory"):
        render(scaffold(), target)
    assert target.read_text() == "x"


def test_fills_an_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    render(scaffold(), target)
    assert sorted(files_under(target)) == FILES
    assert sorted(tmp_path.iterdir()) == [target]


class FailingScaffold(Scaffold):
    """Fails after its third file, as a full disk would."""

    def files(self, target: Path) -> Iterator[tuple[PurePosixPath, str]]:
        yield from itertools.islice(super().files(target), 3)
        raise OSError("No space left on device")


def test_a_failure_leaves_nothing_half_written(tmp_path: Path) -> None:
    failing = FailingScaffold("demo", "0.1.0")
    with pytest.raises(OSError, match="No space left on device"):
        render(failing, tmp_path / "parent" / "demo")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "parent"]  # the parent it created
    assert list((tmp_path / "parent").iterdir()) == []


# What it writes


def test_writes_the_documented_tree(tmp_path: Path) -> None:
    written = render(scaffold(), tmp_path / "demo")
    assert [path.as_posix() for path in written] == FILES
    assert sorted(files_under(tmp_path / "demo")) == FILES


def test_prints_the_path_the_tree_and_the_three_commands(tmp_path: Path) -> None:
    target = tmp_path / "out"
    result = new("demo", "--directory", str(target))
    assert result.exit_code == 0, result.output
    migration = next((target / "powerstrip_demo" / "migrations").iterdir()).name
    listing = "\n".join(f"  {line}" for line in FILES_TREE).replace(
        f"{REVISION}_create_items.py", migration
    )
    host = shlex.quote(f"{ROOT}[test]")
    assert result.output == (
        f"Created powerstrip-demo, the plugin 'demo', in {target}:\n"
        f"{listing}\n"
        "\n"
        "From nothing to green tests (README.md tells the rest):\n"
        f"  cd {target}\n"
        "  python3 -m venv .venv && .venv/bin/python -m pip install --quiet uv\n"
        f"  .venv/bin/uv pip install --python .venv/bin/python -e {host} -e '.[test]'\n"
        "  .venv/bin/pytest\n"
    )


def test_tree_lists_directories_before_their_files() -> None:
    assert tree([PurePosixPath(path) for path in FILES]) == FILES_TREE
    assert tree([PurePosixPath("b/d/e.py"), PurePosixPath("a"), PurePosixPath("b/c")]) == [
        "a",
        "b/",
        "  c",
        "  d/",
        "    e.py",
    ]


def test_templates_are_only_the_tmpl_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("x.py.tmpl", "notes.txt", "sub/y.tmpl"):
        (tmp_path / name).write_text(name)
    found = [(parts, file.read_text()) for parts, file in template_files(tmp_path)]
    assert found == [(("sub", "y"), "sub/y.tmpl"), (("x.py",), "x.py.tmpl")]


def test_names_the_package_and_distribution_after_the_plugin(tmp_path: Path) -> None:
    written = render(scaffold("my_plugin"), tmp_path / "p")
    assert PurePosixPath("powerstrip_my_plugin/__init__.py") in written
    pyproject = tomllib.loads((tmp_path / "p" / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "powerstrip-my-plugin"
    schemas = (tmp_path / "p" / "powerstrip_my_plugin" / "schemas.py").read_text()
    assert "class MyPluginItemSchema(ma.Schema):" in schemas  # global OpenAPI names: prefixed


def test_the_first_migration_starts_the_plugins_branch(project: Path) -> None:
    migration = project / "powerstrip_demo" / "migrations" / f"{REVISION}_create_items.py"
    text = migration.read_text()
    assert f"Revision ID: {REVISION}\n" in text
    assert f"Create Date: {CREATED.astimezone():%Y-%m-%d %H:%M:%S.%f}\n" in text
    assert "down_revision: str | Sequence[str] | None = None\n" in text
    assert 'branch_labels: str | Sequence[str] | None = ("demo",)\n' in text
    assert 'sa.PrimaryKeyConstraint("id", name=op.f("pk_demo_items")),' in text
    assert 'sa.Column("version", sa.Integer(), nullable=False),' in text
    assert "sqlite_autoincrement=True," in text


def test_a_new_revision_each_time() -> None:
    first, second = Scaffold("demo", "0.1.0"), Scaffold("demo", "0.1.0")
    assert first.revision != second.revision
    assert len(first.revision) == 12
    assert int(first.revision, 16) >= 0


# The requirement on the host and where the host comes from


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.1.0", ">=0.1,<1"),
        ("1.4.2", ">=1.4,<2"),
        ("2", ">=2.0,<3"),
        ("1.10.0.dev3", ">=1.10,<2"),
        ("1!3.2.1", ">=3.2,<4"),
    ],
)
def test_host_range(version: str, expected: str) -> None:
    assert host_range(version) == expected


def test_host_range_refuses_a_non_version() -> None:
    with pytest.raises(ValueError, match="not a version: 'main'"):
        host_range("main")


def host_distribution(tmp_path: Path, direct_url: dict[str, Any] | None) -> metadata.Distribution:
    info = tmp_path / "powerstrip-1.4.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: powerstrip\nVersion: 1.4.2\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return metadata.PathDistribution(info)


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        ({"url": "file:///src/power%20strip", "dir_info": {"editable": True}}, "/src/power strip"),
        ({"url": "file:///src/powerstrip", "dir_info": {}}, "/src/powerstrip"),
        ({"url": "file:///w/powerstrip-1.4.2-py3-none-any.whl", "archive_info": {}}, None),
        ({"url": "https://example.org/powerstrip-1.4.2.tar.gz", "archive_info": {}}, None),
        (None, None),  # from an index
    ],
)
def test_local_project(tmp_path: Path, direct_url: dict[str, Any] | None, expected: str) -> None:
    host = host_distribution(tmp_path, direct_url)
    project = Path(expected) if expected else None
    assert local_project(host) == project
    for_host = Scaffold.for_host("demo", host)
    assert (for_host.host_version, for_host.host_project) == ("1.4.2", project)


def test_this_host_is_its_checkout() -> None:
    assert local_project(metadata.distribution("powerstrip")) == ROOT


def test_readme_installs_the_host_from_its_directory(tmp_path: Path) -> None:
    render(scaffold(host_project=Path("/src/power strip")), tmp_path / "p")
    readme = (tmp_path / "p" / "README.md").read_text()
    commands = [
        "python3 -m venv .venv && .venv/bin/python -m pip install --quiet uv",
        ".venv/bin/uv pip install --python .venv/bin/python -e '/src/power strip[test]' "
        "-e '.[test]'",
        ".venv/bin/pytest",
    ]
    assert "```sh\n" + "\n".join(commands) + "\n```" in readme
    assert f".venv/bin/uv pip install -e {tmp_path / 'p'}\n" in readme
    assert "(in `/src/power strip`)" in readme
    assert "`/src/power strip/docs/plugins.md`" in readme


def test_readme_installs_the_host_from_the_index_otherwise(tmp_path: Path) -> None:
    render(scaffold(), tmp_path / "p")
    readme = (tmp_path / "p" / "README.md").read_text()
    assert (
        ".venv/bin/uv pip install --python .venv/bin/python 'powerstrip[test]>=0.1,<1' "
        "-e '.[test]'\n"
    ) in readme
    assert "`docs/plugins.md` in Powerstrip." in readme


# Packaging and the host's own settings


def test_pyproject_packages_the_plugin_for_this_host(project: Path) -> None:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    assert {
        key: pyproject["project"][key]
        for key in ("name", "version", "requires-python", "dependencies", "optional-dependencies")
    } == {
        "name": "powerstrip-demo",
        "version": "0.1.0",
        "requires-python": ">=3.11",
        "dependencies": ["powerstrip>=0.1,<1"],
        "optional-dependencies": {
            "test": ["powerstrip[test]>=0.1,<1"],
            "dev": ["ruff>=0.8", "mypy>=1.13"],
        },
    }
    assert pyproject["project"]["entry-points"] == {
        "powerstrip.plugins": {"demo": "powerstrip_demo:plugin"}
    }
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "powerstrip_demo"
    ]


def test_pyproject_keeps_the_hosts_settings(project: Path) -> None:
    tool = tomllib.loads((project / "pyproject.toml").read_text())["tool"]
    host = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    for key in ("line-length", "target-version"):
        assert tool["ruff"][key] == host["ruff"][key]
    for key in ("select", "ignore"):
        assert tool["ruff"]["lint"][key] == host["ruff"]["lint"][key]
    for key in ("python_version", "strict", "warn_unreachable"):
        assert tool["mypy"][key] == host["mypy"][key]
    pytest_options = tool["pytest"]["ini_options"]
    assert pytest_options["filterwarnings"] == host["pytest"]["ini_options"]["filterwarnings"]
    assert {"--strict-markers", "--strict-config", "--cov-branch"} <= set(pytest_options["addopts"])


def test_passes_ruff_check_and_format(project: Path, tmp_path: Path) -> None:
    longest = tmp_path / "longest"
    render(scaffold(LONGEST_NAME), longest)  # every line still fits and is formatted
    for directory in (project, longest):
        for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
            result = run([sys.executable, "-m", "ruff", *args], directory)
            assert result.returncode == 0, result.stdout + result.stderr


def test_passes_mypy_strict(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "mypy-cache"
    result = run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "powerstrip_demo", "tests"],
        project,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found in 16 source files")


# The command, as the host installs it


@pytest.mark.parametrize("script", ["powerstrip", "flask"])
def test_console_scripts_write_powerstrip_name_by_default(script: str, tmp_path: Path) -> None:
    result = run(
        [str(Path(sys.executable).parent / script), "plugins", "new", "my_plugin"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    target = tmp_path / "powerstrip-my-plugin"
    assert result.stdout.startswith(
        f"Created powerstrip-my-plugin, the plugin 'my_plugin', in {target}:\n"
    )
    assert (target / "powerstrip_my_plugin" / "__init__.py").is_file()
