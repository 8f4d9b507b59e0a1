"""``powerstrip plugins new NAME``: a new third-party plugin project, ready for its tests.

The project is rendered from the ``*.tmpl`` files under ``template/`` (package data) with
:class:`string.Template` (``$$`` is a literal ``$``); in their paths, ``__package__`` becomes the
plugin's package and ``__revision__`` its first migration's revision id. Everything is written
into a temporary directory beside the target, then renamed into place: a failure leaves nothing
half-written, and an existing non-empty directory is never touched.

The host adds :func:`new` to its ``plugins`` command group; the SDK never imports the host.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from string import Template
from urllib.parse import unquote, urlparse

import click

from powerstrip.plugin import ENTRY_POINT_GROUP, name_problem

HOST_DISTRIBUTION = "powerstrip"
SUFFIX = ".tmpl"
_VERSION = re.compile(r"(?:\d+!)?(\d+)(?:\.(\d+))?")


def new_name_problem(name: str, installed: Mapping[str, str]) -> str | None:
    """Why ``name`` cannot name a new plugin, or None; ``installed``: plugin -> distribution."""
    problem = name_problem(name)
    if problem is not None:
        return problem
    if name in installed:
        return f"an installed plugin has this name (distribution {installed[name]})"
    return None


def installed_plugins() -> dict[str, str]:
    """The installed plugins' names (their entry points, never loaded) -> distributions."""
    return {
        entry_point.name: entry_point.dist.name if entry_point.dist else "unknown"
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP)
    }


def host_range(version: str) -> str:
    """The host versions a new plugin accepts: ``>=X.Y,<X+1`` for host ``X.Y.Z``."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    major, minor = int(match[1]), int(match[2] or 0)
    return f">={major}.{minor},<{major + 1}"


def local_project(distribution: metadata.Distribution) -> Path | None:
    """The local directory ``distribution`` was installed from (PEP 610), if it was one."""
    text = distribution.read_text("direct_url.json")
    direct = json.loads(text) if text else {}
    url = urlparse(str(direct.get("url", "")))
    if url.scheme != "file" or "dir_info" not in direct:
        return None  # from an index, a wheel or an archive
    return Path(unquote(url.path))


@dataclass(frozen=True, slots=True)
class Scaffold:
    """What a new plugin project is rendered from.

    :param name: the plugin's name (valid: see :func:`new_name_problem`)
    :param host_version: the running host's version, for the requirement range
    :param host_project: the host's source directory, when it is installed from one
    """

    name: str
    host_version: str
    host_project: Path | None = None
    revision: str = field(default_factory=lambda: uuid.uuid4().hex[-12:])  # as Alembic's
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def for_host(cls, name: str, host: metadata.Distribution) -> Scaffold:
        """A project for the host installed as ``host``."""
        return cls(name, host.version, local_project(host))

    @property
    def package(self) -> str:
        """The plugin's Python package: ``powerstrip_NAME``."""
        return f"powerstrip_{self.name}"

    @property
    def distribution(self) -> str:
        """The plugin's distribution: ``powerstrip-NAME``, with ``-`` for ``_``."""
        return f"powerstrip-{self.name.replace('_', '-')}"

    def setup_commands(self) -> tuple[str, ...]:
        """The project's three commands from nothing to green tests (run in its directory)."""
        if self.host_project is not None:
            host = f"-e {shlex.quote(f'{self.host_project}[test]')}"
        else:
            host = shlex.quote(f"powerstrip[test]{host_range(self.host_version)}")
        return (
            "python3 -m venv .venv && .venv/bin/python -m pip install --quiet uv",
            f".venv/bin/uv pip install --python .venv/bin/python {host} -e '.[test]'",
            ".venv/bin/pytest",
        )

    def variables(self, target: Path) -> dict[str, str]:
        """The templates' ``$`` placeholders, for a project written to ``target``."""
        host = self.host_project
        guide = f"`{host / 'docs' / 'plugins.md'}`" if host else "`docs/plugins.md` in Powerstrip"
        return {
            "name": self.name,
            "upper": self.name.upper(),
            "camel": "".join(part.capitalize() for part in self.name.split("_")),
            "package": self.package,
            "distribution": self.distribution,
            "host_range": host_range(self.host_version),
            "revision": self.revision,
            "create_date": self.created.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f"),
            "commands": "\n".join(self.setup_commands()),
            "project": shlex.quote(str(target)),
            "host_home": f"`{host}`" if host else "your Powerstrip host's project",
            "docs": guide,
        }

    def files(self, target: Path) -> Iterator[tuple[PurePosixPath, str]]:
        """Each file of the project: its path relative to ``target`` and its text."""
        variables = self.variables(target)
        renames = {"__package__": self.package, "__revision__": self.revision}
        for parts, template in template_files(resources.files(__name__) / "template"):
            renamed = [_renamed(part, renames) for part in parts]
            text = Template(template.read_text(encoding="utf-8")).substitute(variables)
            yield PurePosixPath(*renamed), text


def template_files(
    directory: Traversable, parents: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Traversable]]:
    """The ``*.tmpl`` files under ``directory``: their path parts (suffix removed), the file."""
    for entry in sorted(directory.iterdir(), key=lambda entry: entry.name):
        if entry.is_dir():
            yield from template_files(entry, (*parents, entry.name))
        elif entry.name.endswith(SUFFIX):
            yield (*parents, entry.name.removesuffix(SUFFIX)), entry


def _renamed(part: str, renames: Mapping[str, str]) -> str:
    for placeholder, value in renames.items():
        part = part.replace(placeholder, value)
    return part


def render(scaffold: Scaffold, target: Path) -> list[PurePosixPath]:
    """Write the project into ``target``, absent or an empty directory; the files written.

    Raises :class:`FileExistsError` (and writes nothing) if ``target`` is anything else.
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} already exists and is not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{secrets.token_hex(4)}.partial"
    staging.mkdir()
    try:
        written = []
        for path, text in scaffold.files(target):
            destination = staging.joinpath(*path.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(text, encoding="utf-8")
            written.append(path)
        staging.replace(target)  # an empty directory is replaced, a non-empty one refuses
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(written, key=lambda path: path.parts)


def tree(paths: Iterable[PurePosixPath]) -> list[str]:
    """Sorted relative file paths as an indented tree, directories ending in ``/``."""
    lines: list[str] = []
    shown: set[tuple[str, ...]] = set()
    for path in sorted(paths, key=lambda path: path.parts):
        for depth in range(1, len(path.parts)):
            if path.parts[:depth] not in shown:
                shown.add(path.parts[:depth])
                lines.append(f"{'  ' * (depth - 1)}{path.parts[depth - 1]}/")
        lines.append(f"{'  ' * (len(path.parts) - 1)}{path.name}")
    return lines


@click.command("new")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(path_type=Path),
    help="The project directory to create (default: ./powerstrip-NAME).",
)
def new(name: str, directory: Path | None) -> None:
    """Write a new plugin project NAME: its package, tests, first migration and README."""
    problem = new_name_problem(name, installed_plugins())
    if problem is not None:
        raise click.BadParameter(problem, param_hint="'NAME'")
    scaffold = Scaffold.for_host(name, metadata.distribution(HOST_DISTRIBUTION))
    target = (directory or Path(scaffold.distribution)).absolute()
    try:
        files = render(scaffold, target)
    except OSError as exc:  # a non-empty target, a directory it may not write...
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {scaffold.distribution}, the plugin {name!r}, in {target}:")
    for line in tree(files):
        click.echo(f"  {line}")
    click.echo("\nFrom nothing to green tests (README.md tells the rest):")
    for command in (f"cd {shlex.quote(str(target))}", *scaffold.setup_commands()):
        click.echo(f"  {command}")
