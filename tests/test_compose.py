"""compose.yaml and the Dockerfile, checked against what the app and the README expect.

No container engine runs here: these tests read the files. Service names, the variables the
app reads, the health endpoint, the migration step and the packages the image must contain.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from app.config import ENV_PREFIX, HostConfigSchema
from app.factory import PLUGINS
from powerstrip.testing import AppFactory

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
APP_ENV: dict[str, str] = SERVICES["app"]["environment"]
VARIABLE = re.compile(r"\$\{([A-Z_]+)(?::[-?]([^}]*))?\}")


def resolved(value: str) -> str:
    """A compose value with ``${NAME:-default}`` replaced by its default (``x`` if required)."""
    return VARIABLE.sub(lambda match: match[2] if "-" in match[0] else "x", value)


def test_the_stack_is_the_app_its_migration_postgres_and_redis() -> None:
    assert set(SERVICES) == {"app", "migrate", "postgres", "redis"}
    for name in ("app", "migrate"):
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["image"] == "powerstrip:local"
    assert SERVICES["migrate"]["command"] == ["flask", "--app", "wsgi", "db", "upgrade"]
    assert SERVICES["migrate"]["environment"] == APP_ENV  # the same configuration
    assert SERVICES["app"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    for name in ("app", "postgres", "redis"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_the_app_is_configured_for_the_services() -> None:
    database = urlsplit(resolved(APP_ENV["POWERSTRIP_DATABASE_URL"]))
    postgres = SERVICES["postgres"]["environment"]
    assert database.hostname == "postgres"
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == resolved(postgres["POSTGRES_PASSWORD"])
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    assert urlsplit(APP_ENV["POWERSTRIP_RATELIMIT_STORAGE_URI"]).hostname == "redis"
    assert APP_ENV["POWERSTRIP_ENVIRONMENT"] == "production"
    # Secrets are required from the operator, never defaulted in the file.
    for secret in ("POWERSTRIP_SECRET_KEY", "POWERSTRIP_ACCOUNTS__SIGNING_KEYS"):
        assert APP_ENV[secret].startswith(f"${{{secret}:?"), secret


def test_every_variable_is_one_the_app_reads(powerstrip_make_app: AppFactory) -> None:
    host_keys = set(HostConfigSchema().fields)
    sections = {name.split("_", 1)[1].partition("__")[0].lower() for name in APP_ENV}
    plugins = sorted(section for section in sections if section.upper() not in host_keys)
    records = powerstrip_make_app(*plugins).extensions[PLUGINS]
    for name in APP_ENV:
        assert name.startswith(f"{ENV_PREFIX}_"), name
        key = name.removeprefix(f"{ENV_PREFIX}_")
        section, _, setting = key.partition("__")
        if setting:
            plugin = records[section.lower()].plugin
            assert plugin is not None
            assert plugin.settings is not None
            assert setting in plugin.settings().fields, name
        else:
            assert key in host_keys, name


def test_the_health_check_asks_an_endpoint_that_exists(powerstrip_make_app: AppFactory) -> None:
    command = " ".join(SERVICES["app"]["healthcheck"]["test"])
    [url] = re.findall(r"http://127\.0\.0\.1:8000(/[\w/]+)", command)
    app = powerstrip_make_app("health")
    assert app.test_client().get(url).status_code == 200
    assert SERVICES["app"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "GUNICORN_BIND=0.0.0.0:8000" in DOCKERFILE


def test_the_image_holds_every_package_the_distribution_ships() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    for package in packages:
        assert f"COPY {package} {package}" in DOCKERFILE, package
    assert "COPY requirements/main.txt" in DOCKERFILE  # the hashed lock


def test_the_readme_shows_the_stack() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up" in readme
    for secret in ("POWERSTRIP_SECRET_KEY", "POWERSTRIP_ACCOUNTS__SIGNING_KEYS"):
        assert f"export {secret}=" in readme
