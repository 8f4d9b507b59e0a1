"""compose.yaml, deploy/nginx.conf and the Dockerfile, checked against what the app, gunicorn
and the README expect.

No container engine runs here: these tests read the files. Service names, the variables the
app reads, the health endpoint, the migration step, the packages the image must contain, and
nginx's limits against the app's and gunicorn's (tests/test_slow_clients.py runs nginx).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from app import logs
from app.config import ENV_PREFIX, HostConfigSchema
from app.factory import PLUGINS
from powerstrip.http import REQUEST_ID_HEADER
from powerstrip.testing import AppFactory

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
NGINX_CONF = (ROOT / "deploy" / "nginx.conf").read_text()
GUNICORN_CONF = (ROOT / "gunicorn.conf.py").read_text()
APP_ENV: dict[str, str] = SERVICES["app"]["environment"]
VARIABLE = re.compile(r"\$\{([A-Z_]+)(?::[-?]([^}]*))?\}")


def resolved(value: str) -> str:
    """A compose value with ``${NAME:-default}`` replaced by its default (``x`` if required)."""
    return VARIABLE.sub(lambda match: match[2] if "-" in match[0] else "x", value)


def test_the_stack_is_the_app_its_migration_postgres_and_redis() -> None:
    assert set(SERVICES) == {"app", "migrate", "nginx", "postgres", "redis"}
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
    assert SERVICES["nginx"]["depends_on"] == {"app": {"condition": "service_healthy"}}
    for name in ("app", "nginx", "postgres", "redis"):
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


def test_the_health_checks_ask_endpoints_that_exist(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("health")
    for name in ("app", "nginx"):  # gunicorn in its container; nginx's own port, through to it
        command = " ".join(SERVICES[name]["healthcheck"]["test"])
        [url] = re.findall(r"http://127\.0\.0\.1:8000(/[\w/]+)", command)
        assert app.test_client().get(url).status_code == 200, name
    assert "GUNICORN_BIND=0.0.0.0:8000" in DOCKERFILE


def test_only_nginx_is_published() -> None:
    """gunicorn (and its metrics port) only on the compose network; nginx answers on 8000."""
    published = {name: service["ports"] for name, service in SERVICES.items() if "ports" in service}
    assert published == {"nginx": ["127.0.0.1:8000:8000"]}
    assert "listen 8000 default_server;" in NGINX_CONF
    assert directives("server") == ["app:8000"]  # the app service, GUNICORN_BIND's port
    assert "9464" not in NGINX_CONF
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in SERVICES["nginx"]["volumes"]
    assert SERVICES["nginx"]["image"].startswith("nginx:")


def directives(name: str) -> list[str]:
    """The values of every ``name ...;`` directive of deploy/nginx.conf, comments left out."""
    text = "\n".join(line.partition("#")[0] for line in NGINX_CONF.splitlines())
    return [value.strip() for value in re.findall(rf"(?m)^\s*{name}\s+([^;{{]*);", text)]


def directive(name: str) -> str:
    [value] = directives(name)
    return value


def gunicorn_default(setting: str) -> int:
    """A gunicorn.conf.py setting's default (every one reads GUNICORN_<SETTING> first)."""
    [value] = re.findall(
        rf'(?m)^{setting} = int\(os\.environ\.get\("GUNICORN_{setting.upper()}", "(\d+)"\)\)',
        GUNICORN_CONF,
    )
    return int(value)


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmM])?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"k": 1024, "m": 1024 * 1024, None: 1}[unit and unit.lower()]


def test_nginx_buffers_and_bounds_slow_clients() -> None:
    assert directive("proxy_request_buffering") == "on"
    assert directive("proxy_buffering") == "on"
    assert not directives("proxy_intercept_errors")  # the app's own problems pass untouched
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert seconds(directive(name)) <= 10, name
    [client_keepalive, upstream_keepalive] = directives("keepalive_timeout")
    assert seconds(client_keepalive) <= 30
    # nginx drops an idle upstream connection before gunicorn would close it under it.
    assert seconds(upstream_keepalive) < gunicorn_default("keepalive")
    assert int(directive("keepalive")) > 0
    assert directive("proxy_http_version") == "1.1"
    assert 'proxy_set_header Connection "";' in NGINX_CONF


def test_nginx_refuses_what_gunicorn_and_the_app_would() -> None:
    """nginx's limits are the app's and gunicorn's, so its problem+json answers come first."""
    body_limit = HostConfigSchema().fields["MAX_CONTENT_LENGTH"].load_default
    assert size(directive("client_max_body_size")) == body_limit
    count, buffer = directive("large_client_header_buffers").split()
    # A request line or a header field must fit one buffer with its CRLF. gunicorn counts the
    # CRLF of a header field, not of the request line.
    assert size(buffer) - 2 <= gunicorn_default("limit_request_line")
    assert size(buffer) <= gunicorn_default("limit_request_field_size")
    assert int(count) * size(buffer) <= 32 * 1024
    assert gunicorn_default("limit_request_fields") == 100


def test_nginx_forwards_what_proxyfix_and_the_request_id_need() -> None:
    assert APP_ENV["POWERSTRIP_TRUSTED_PROXY_COUNT"] == "1"  # nginx: the one trusted hop
    forwarded = dict(value.split(None, 1) for value in directives("proxy_set_header"))
    assert forwarded["X-Forwarded-For"] == "$remote_addr"  # replaced, never the client's
    assert forwarded["X-Forwarded-Proto"] == "$scheme"
    assert forwarded["X-Forwarded-Host"] == "$http_host"
    assert forwarded["X-Forwarded-Port"] == '""'  # ProxyFix x_port: never the client's
    assert forwarded[REQUEST_ID_HEADER] == "$powerstrip_request_id"
    # The client's id passes when the app would take it (app/logs.py), else nginx's own.
    [pattern] = re.findall(r'"~\^(.*)\$" \$http_x_request_id;', NGINX_CONF)
    for candidate in ("abc-123", "a" * 128, "a" * 129, "a b", 'a"b', "-a", ""):
        accepted = re.fullmatch(pattern, candidate) is not None
        assert accepted == (logs._REQUEST_ID_PATTERN.fullmatch(candidate) is not None), candidate


PROBLEMS = {
    400: 400,
    404: 404,
    413: 413,
    414: 414,
    494: 431,
    500: 500,
    502: 502,
    503: 503,
    504: 504,
}


def test_nginx_answers_its_own_errors_as_problems() -> None:
    pages = {}
    for value in directives("error_page"):
        *codes, uri = value.split()
        status = int(codes.pop().removeprefix("=")) if codes[-1].startswith("=") else None
        for code in codes:
            pages[int(code)] = (status or int(code), uri)
    assert {code: status for code, (status, _) in pages.items()} == PROBLEMS
    for status, uri in pages.values():
        [block] = re.findall(rf"location = {uri} \{{(.*?)\n        \}}", NGINX_CONF, re.S)
        assert "internal;" in block
        assert "default_type application/problem+json;" in block
        assert "add_header X-Request-ID $powerstrip_request_id always;" in block
        [(code, body)] = re.findall(r"return (\d+) '(.*)';", block)
        assert int(code) == status
        problem = json.loads(body.removesuffix("\\n").replace("$powerstrip_request_id", "id"))
        assert set(problem) == {"type", "title", "status", "detail", "request_id"}
        assert problem["status"] == status
        assert problem["type"] == "about:blank"


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
    assert "`deploy/nginx.conf`" in readme
    assert "Behind nginx: slow clients and request limits" in readme
    for secret in ("POWERSTRIP_SECRET_KEY", "POWERSTRIP_ACCOUNTS__SIGNING_KEYS"):
        assert f"export {secret}=" in readme
