"""Host configuration: layered loading, validation and redaction.

Layers, later ones win: defaults in :class:`HostConfigSchema` -> ``instance/config.toml`` ->
``POWERSTRIP_*`` environment (Flask's ``from_prefixed_env``: values parsed as JSON when they
can be, ``__`` for nesting) -> the mapping passed to ``create_app``. Everything is validated
once, at startup; any problem raises :class:`ConfigError` whose message is one line naming
the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import marshmallow as ma
from flask import Config
from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from werkzeug.sansio.utils import host_is_trusted

from app.db import SQLITE_SYNCHRONOUS

ENV_PREFIX = "POWERSTRIP"
CONFIG_FILE = "config.toml"
DEFAULT_DATABASE = "powerstrip.db"
REDACTED = "**redacted**"
ENVIRONMENTS = ("production", "development", "testing")
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT_CHARS = 10
# Only ever used when ENVIRONMENT is development or testing; production refuses it. A public
# placeholder, never a credential (hence the S105/B105 waivers).
DEVELOPMENT_SECRET_KEY = "powerstrip-development-secret-key-not-for-production"  # noqa: S105  # nosec B105


class StartupError(Exception):
    """The app cannot start; the message is one line naming what is wrong."""


class ConfigError(StartupError):
    """The configuration is invalid; the message is one line naming the key."""


def _validate_limits(value: list[str]) -> None:
    for item in value:
        try:
            parse_many(item)
        except ValueError as exc:
            raise ma.ValidationError(f"{item!r} is not a rate limit such as '100/minute'.") from exc


def _validate_storage_uri(value: str) -> None:
    if urlsplit(value).scheme not in {"memory", "redis", "rediss", "redis+sentinel"}:
        raise ma.ValidationError("Use memory://, redis://, rediss:// or redis+sentinel://.")


def _validate_host_name(value: str) -> None:
    # werkzeug's check of a Host header's characters. Its trusted list ignores a port, would
    # cut an IPv6 literal at its first colon and compares names as written: refuse those.
    if not host_is_trusted(value.removeprefix("."), None) or ":" in value or value != value.lower():
        raise ma.ValidationError(
            f"{value!r} is not a lower-case host name or IPv4 address such as "
            "'api.example.com', '.example.com' or '127.0.0.1' (no port, no IPv6)."
        )


def _validate_database_url(value: str | None) -> None:
    if value is None:
        return
    try:
        backend = make_url(value).get_backend_name()
    except ArgumentError as exc:
        raise ma.ValidationError("not a database URL such as postgresql+psycopg://...") from exc
    if backend not in {"sqlite", "postgresql"}:
        raise ma.ValidationError("Use sqlite:/// or postgresql+psycopg://.")


def _secret(**kwargs: Any) -> dict[str, Any]:
    return {"secret": True, **kwargs}  # nosec B105  # a metadata flag (redact it), not a password


class HostConfigSchema(ma.Schema):
    """Every key the host accepts, its type and its default."""

    class Meta:
        unknown = ma.RAISE

    INSTANCE_PATH = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "Folder holding config.toml and the SQLite database"},
    )
    ENVIRONMENT = ma.fields.String(
        load_default="production",
        validate=ma.validate.OneOf(ENVIRONMENTS),
        metadata={"description": "production, development or testing"},
    )
    SECRET_KEY = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata=_secret(description="Signing key; required (32+ chars) in production"),
    )
    LOG_LEVEL = ma.fields.String(
        load_default="INFO",
        validate=ma.validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
        metadata={"description": "Level of the JSON log on stdout"},
    )
    MAX_CONTENT_LENGTH = ma.fields.Integer(
        load_default=1024 * 1024,
        strict=True,
        validate=ma.validate.Range(min=1),
        metadata={"description": "Largest accepted request body in bytes"},
    )
    RATELIMIT_ENABLED = ma.fields.Boolean(
        load_default=True, metadata={"description": "Turn rate limiting on or off"}
    )
    RATELIMIT_DEFAULT = ma.fields.List(
        ma.fields.String(),
        load_default=lambda: ["300/minute"],
        validate=_validate_limits,
        metadata={"description": "Default limits per client address"},
    )
    RATELIMIT_STORAGE_URI = ma.fields.String(
        load_default="memory://",
        validate=_validate_storage_uri,
        metadata=_secret(description="memory:// (one process) or redis://host:port/db"),
    )
    RATELIMIT_KEY_PREFIX = ma.fields.String(
        load_default="powerstrip",
        validate=ma.validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$"),
        metadata={"description": "Prefix of the counters' keys (deployments sharing a Redis)"},
    )
    RATELIMIT_STORAGE_CONNECT_TIMEOUT = ma.fields.Float(
        load_default=0.5,
        validate=ma.validate.Range(min=0.01, max=10),
        metadata={
            "description": "Seconds to connect to Redis; past it the process counts in memory"
        },
    )
    RATELIMIT_STORAGE_TIMEOUT = ma.fields.Float(
        load_default=0.25,
        validate=ma.validate.Range(min=0.01, max=10),
        metadata={
            "description": "Seconds Redis may take to answer; past it the process counts in memory"
        },
    )
    DATABASE_URL = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=_validate_database_url,
        metadata=_secret(
            description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db "
            "(default: SQLite file powerstrip.db in the instance folder)"
        ),
    )
    DATABASE_POOL_SIZE = ma.fields.Integer(
        load_default=5,
        strict=True,
        validate=ma.validate.Range(min=1, max=100),
        metadata={"description": "Connections kept open per process (PostgreSQL)"},
    )
    DATABASE_MAX_OVERFLOW = ma.fields.Integer(
        load_default=10,
        strict=True,
        validate=ma.validate.Range(min=0, max=100),
        metadata={"description": "Extra connections allowed under load (PostgreSQL)"},
    )
    DATABASE_POOL_TIMEOUT = ma.fields.Float(
        load_default=10.0,
        validate=ma.validate.Range(min=0.1, max=300),
        metadata={"description": "Seconds to wait for a free connection before a 503"},
    )
    DATABASE_STATEMENT_TIMEOUT = ma.fields.Integer(
        load_default=15000,
        strict=True,
        validate=ma.validate.Range(min=0),
        metadata={
            "description": "Milliseconds a PostgreSQL statement may run before it is cancelled "
            "(a 503 problem), freeing the worker's thread; "
            "0: no limit"
        },
    )
    DATABASE_CONNECT_TIMEOUT = ma.fields.Integer(
        load_default=5,
        strict=True,
        validate=ma.validate.Range(min=2, max=300),
        metadata={
            "description": "Seconds to open a PostgreSQL connection before a 503 problem "
            "(libpq connect_timeout; at least 2)"
        },
    )
    DATABASE_READ_TIMEOUT = ma.fields.Integer(
        load_default=20,
        strict=True,
        validate=ma.validate.Range(min=0, max=86400),
        metadata={
            "description": "Seconds the app waits for any answer of PostgreSQL on an open "
            "connection (a server or proxy that stopped answering) before it closes the "
            "connection and answers a 503 problem; longer than the statement timeout; 0: no limit"
        },
    )
    DATABASE_PREPARE_THRESHOLD = ma.fields.Integer(
        load_default=5,
        strict=True,
        validate=ma.validate.Range(min=0, max=1000),
        metadata={
            "description": "Runs of a statement on one PostgreSQL connection (psycopg) after "
            "which it is prepared on the server, skipping its parsing and planning from then on "
            "(psycopg's prepare_threshold); 0: never (PgBouncer in transaction mode before 1.22, "
            "or without max_prepared_statements)"
        },
    )
    DATABASE_KEEPALIVES_IDLE = ma.fields.Integer(
        load_default=30,
        strict=True,
        validate=ma.validate.Range(min=1, max=7200),
        metadata={
            "description": "Seconds a PostgreSQL connection sends nothing before TCP keepalive "
            "probes start"
        },
    )
    DATABASE_KEEPALIVES_INTERVAL = ma.fields.Integer(
        load_default=10,
        strict=True,
        validate=ma.validate.Range(min=1, max=600),
        metadata={"description": "Seconds between TCP keepalive probes (PostgreSQL)"},
    )
    DATABASE_KEEPALIVES_COUNT = ma.fields.Integer(
        load_default=3,
        strict=True,
        validate=ma.validate.Range(min=1, max=30),
        metadata={
            "description": "Unanswered keepalive probes that drop a PostgreSQL connection; "
            "unacknowledged data drops it after idle + interval x count seconds too"
        },
    )
    DATABASE_POOL_RECYCLE = ma.fields.Integer(
        load_default=1800,
        strict=True,
        validate=ma.validate.Range(min=-1),
        metadata={"description": "Seconds after which a pooled connection is replaced"},
    )
    DATABASE_PING_AFTER_IDLE = ma.fields.Float(
        load_default=0.5,
        validate=ma.validate.Range(min=0, max=3600),
        metadata={
            "description": "Seconds a pooled PostgreSQL connection may sit unused and still be "
            "used without a ping first (a round trip that finds a dropped connection and "
            "replaces it); 0: ping before every use"
        },
    )
    DATABASE_SQLITE_SYNCHRONOUS = ma.fields.String(
        load_default="FULL",
        validate=ma.validate.OneOf(sorted(SQLITE_SYNCHRONOUS)),
        metadata={
            "description": "SQLite (WAL) PRAGMA synchronous: FULL syncs every commit to disk; "
            "NORMAL commits faster and cannot corrupt the database, but may lose the last "
            "commits if the machine loses power or its OS crashes (not if the process dies)"
        },
    )
    PLUGINS = ma.fields.List(
        ma.fields.String(),
        load_default=None,
        allow_none=True,
        metadata={"description": "Allow-list of plugin names (all installed plugins if unset)"},
    )
    PLUGINS_DISABLED = ma.fields.List(
        ma.fields.String(),
        load_default=list,
        metadata={"description": "Plugins never imported"},
    )
    PLUGINS_STRICT = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "Fail startup on a broken plugin (false: skip and report it)"},
    )
    PLUGIN_URL_PREFIX = ma.fields.String(
        load_default="/api/v1",
        validate=ma.validate.Regexp(r"^(/[a-z0-9._-]+)+$"),
        metadata={"description": "Plugins are mounted at <prefix>/<plugin name>"},
    )
    CORS_ORIGINS = ma.fields.List(
        ma.fields.String(validate=ma.validate.URL(schemes={"http", "https"}, require_tld=False)),
        load_default=list,
        metadata={"description": "Origins allowed by CORS (none by default)"},
    )
    TRUSTED_PROXY_COUNT = ma.fields.Integer(
        load_default=0,
        strict=True,
        validate=ma.validate.Range(min=0, max=10),
        metadata={"description": "Proxies in front whose X-Forwarded-* headers are trusted"},
    )
    TRUSTED_HOSTS = ma.fields.List(
        ma.fields.String(validate=_validate_host_name),
        load_default=list,
        metadata={
            "description": "Host names the API answers to (.example.com: and its subdomains); "
            "another Host header is a 400 problem. Empty: any (production warns at startup)"
        },
    )
    IDEMPOTENCY_KEY_TTL = ma.fields.Integer(
        load_default=86400,
        strict=True,
        validate=ma.validate.Range(min=60),
        metadata={"description": "Seconds an Idempotency-Key (and its answer) is kept"},
    )
    METRICS_ENABLED = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "Measure requests and serve Prometheus metrics (gunicorn)"},
    )
    METRICS_HOST = ma.fields.String(
        load_default="127.0.0.1",
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "Address the gunicorn master serves metrics on"},
    )
    METRICS_PORT = ma.fields.Integer(
        load_default=9464,
        strict=True,
        validate=ma.validate.Range(min=0, max=65535),
        metadata={"description": "Port of the metrics endpoint, never the API's (0: any free)"},
    )
    IDEMPOTENCY_LOCK_TIMEOUT = ma.fields.Integer(
        load_default=300,
        strict=True,
        validate=ma.validate.Range(min=1),
        metadata={
            "description": "Seconds after which a retry may take over an unfinished request's "
            "Idempotency-Key (its worker died)"
        },
    )

    @ma.validates_schema
    def _check_idempotency_times(self, data: dict[str, Any], **_: Any) -> None:
        # A key must outlive the longest a request may hold it, or a retry would find it
        # expired while the first request still runs, and run the operation again.
        ttl, lock = data.get("IDEMPOTENCY_KEY_TTL"), data.get("IDEMPOTENCY_LOCK_TIMEOUT")
        if isinstance(ttl, int) and isinstance(lock, int) and ttl <= lock:
            raise ma.ValidationError(
                f"must be longer than IDEMPOTENCY_LOCK_TIMEOUT ({lock}).", "IDEMPOTENCY_KEY_TTL"
            )

    @ma.validates_schema
    def _check_database_timeouts(self, data: dict[str, Any], **_: Any) -> None:
        # A slow statement must be cancelled by the server (a 503 that keeps the connection)
        # before the client gives up on the server and drops the connection. (With no
        # statement timeout here, one set on the role must be shorter: not ours to see.)
        read, statement = data.get("DATABASE_READ_TIMEOUT"), data.get("DATABASE_STATEMENT_TIMEOUT")
        if read and statement and read * 1000 <= statement:
            raise ma.ValidationError(
                f"must be longer than DATABASE_STATEMENT_TIMEOUT ({statement} ms).",
                "DATABASE_READ_TIMEOUT",
            )

    @ma.validates_schema
    def _check_secret_key(self, data: dict[str, Any], **_: Any) -> None:
        if data["ENVIRONMENT"] in ("development", "testing"):
            return
        key = data.get("SECRET_KEY")
        if not key:
            raise ma.ValidationError("required outside development and testing.", "SECRET_KEY")
        if len(key) < MIN_SECRET_LENGTH or len(set(key)) < MIN_SECRET_DISTINCT_CHARS:
            raise ma.ValidationError(
                f"too weak: use at least {MIN_SECRET_LENGTH} random characters, for example "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
                "SECRET_KEY",
            )
        if key == DEVELOPMENT_SECRET_KEY:
            raise ma.ValidationError("the development key is refused here.", "SECRET_KEY")


@dataclass(frozen=True, slots=True)
class HostConfig:
    """The validated host configuration."""

    INSTANCE_PATH: str
    ENVIRONMENT: str
    SECRET_KEY: str
    LOG_LEVEL: str
    MAX_CONTENT_LENGTH: int
    RATELIMIT_ENABLED: bool
    RATELIMIT_DEFAULT: tuple[str, ...]
    RATELIMIT_STORAGE_URI: str
    RATELIMIT_KEY_PREFIX: str
    RATELIMIT_STORAGE_CONNECT_TIMEOUT: float
    RATELIMIT_STORAGE_TIMEOUT: float
    DATABASE_URL: str | None
    DATABASE_POOL_SIZE: int
    DATABASE_MAX_OVERFLOW: int
    DATABASE_POOL_TIMEOUT: float
    DATABASE_POOL_RECYCLE: int
    DATABASE_STATEMENT_TIMEOUT: int
    DATABASE_READ_TIMEOUT: int
    DATABASE_CONNECT_TIMEOUT: int
    DATABASE_PREPARE_THRESHOLD: int
    DATABASE_KEEPALIVES_IDLE: int
    DATABASE_KEEPALIVES_INTERVAL: int
    DATABASE_KEEPALIVES_COUNT: int
    DATABASE_PING_AFTER_IDLE: float
    DATABASE_SQLITE_SYNCHRONOUS: str
    PLUGINS: tuple[str, ...] | None
    PLUGINS_DISABLED: tuple[str, ...]
    PLUGINS_STRICT: bool
    PLUGIN_URL_PREFIX: str
    CORS_ORIGINS: tuple[str, ...]
    TRUSTED_PROXY_COUNT: int
    TRUSTED_HOSTS: tuple[str, ...]
    IDEMPOTENCY_KEY_TTL: int
    IDEMPOTENCY_LOCK_TIMEOUT: int
    METRICS_ENABLED: bool
    METRICS_HOST: str
    METRICS_PORT: int

    @property
    def database_url(self) -> str:
        """DATABASE_URL, or the SQLite file in the instance folder."""
        return self.DATABASE_URL or f"sqlite:///{Path(self.INSTANCE_PATH) / DEFAULT_DATABASE}"

    @property
    def database_pool(self) -> dict[str, Any]:
        """Pool options for a client/server database's engine."""
        return {
            "pool_size": self.DATABASE_POOL_SIZE,
            "max_overflow": self.DATABASE_MAX_OVERFLOW,
            "pool_timeout": self.DATABASE_POOL_TIMEOUT,
            "pool_recycle": self.DATABASE_POOL_RECYCLE,
            # libpq parameters (the URL's own win; make_engine merges them): every wait on
            # the network is bounded. The statement timeout is set by the server at connect
            # (options): no round trip per checkout.
            "connect_args": {
                "options": f"-c statement_timeout={self.DATABASE_STATEMENT_TIMEOUT}",
                "connect_timeout": self.DATABASE_CONNECT_TIMEOUT,
                "keepalives": 1,
                "keepalives_idle": self.DATABASE_KEEPALIVES_IDLE,
                "keepalives_interval": self.DATABASE_KEEPALIVES_INTERVAL,
                "keepalives_count": self.DATABASE_KEEPALIVES_COUNT,
                # Sent data unacknowledged this long (a host gone mid-query): the connection
                # is dropped, as keepalives drop an idle one.
                "tcp_user_timeout": 1000
                * (
                    self.DATABASE_KEEPALIVES_IDLE
                    + self.DATABASE_KEEPALIVES_INTERVAL * self.DATABASE_KEEPALIVES_COUNT
                ),
            },
        }

    @property
    def is_production(self) -> bool:
        """True unless running in development or testing."""
        return self.ENVIRONMENT == "production"

    def __repr__(self) -> str:
        return f"HostConfig({redacted(as_dict(self))!r})"


def as_dict(config: HostConfig) -> dict[str, Any]:
    """The configuration as a plain mapping (secrets included)."""
    return {name: getattr(config, name) for name in HostConfig.__dataclass_fields__}


def secret_keys(schema: ma.Schema) -> frozenset[str]:
    """Names of the fields a schema marks ``metadata={"secret": True}``."""
    return frozenset(name for name, field in schema.fields.items() if field.metadata.get("secret"))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.password:
            netloc = f"{parts.username or ''}:{REDACTED}@{parts.hostname}"
            if parts.port:
                netloc += f":{parts.port}"
            return urlunsplit(parts._replace(netloc=netloc))
        return value
    return REDACTED if value else value


def redacted(values: Mapping[str, Any], schema: ma.Schema | None = None) -> dict[str, Any]:
    """A copy of ``values`` safe to print: secrets replaced, passwords cut out of URLs.

    Secrets are the fields ``schema`` (the host's by default) marks as secret.
    """
    secrets = secret_keys(schema or HostConfigSchema())
    return {key: _redact_value(value) if key in secrets else value for key, value in values.items()}


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_layers(instance_path: Path, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge the instance file, the prefixed environment and ``overrides`` (unvalidated)."""
    merged: dict[str, Any] = {}
    config_file = instance_path / CONFIG_FILE
    if config_file.is_file():
        try:
            with config_file.open("rb") as handle:
                merged = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: not valid TOML: {exc}") from None
    from_env = Config(root_path=str(instance_path))
    from_env.from_prefixed_env(prefix=ENV_PREFIX)
    merged = _deep_merge(merged, from_env)
    return _deep_merge(merged, overrides or {})


def first_error(messages: Any, path: str = "") -> tuple[str, str]:
    """The first (key path, message) of marshmallow's nested error messages."""
    if isinstance(messages, dict):
        key, value = sorted(messages.items(), key=lambda item: str(item[0]))[0]
        return first_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(messages, list) and messages:
        if isinstance(messages[0], dict):
            return first_error(messages[0], path)
        return path, str(messages[0])
    return path, str(messages)


def validate(values: Mapping[str, Any]) -> HostConfig:
    """Validate merged layers into a :class:`HostConfig` or raise :class:`ConfigError`."""
    try:
        data = HostConfigSchema().load(dict(values))
    except ma.ValidationError as exc:
        key, message = first_error(exc.messages)
        if message == "Unknown field.":
            env_name = f"{ENV_PREFIX}_{key.replace('.', '__')}"
            message = f"unknown key (env {env_name}); check the spelling."
        raise ConfigError(f"configuration key {key}: {message}") from None
    if data["SECRET_KEY"] is None:
        data["SECRET_KEY"] = DEVELOPMENT_SECRET_KEY
    # Lists become tuples: the validated configuration is immutable.
    frozen: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return HostConfig(**frozen)


Sections = dict[str, dict[str, Any]]


def load(
    instance_path: Path, overrides: Mapping[str, Any] | None = None
) -> tuple[HostConfig, Sections]:
    """Read every layer; validate the host keys; return them and the plugin sections.

    A table (a TOML ``[hello]`` table, ``POWERSTRIP_HELLO__GREETING`` in the environment, a
    nested mapping) is a plugin's section: its name is lower-cased, its keys upper-cased, and
    the plugin's own settings schema validates it.
    """
    values = read_layers(instance_path, overrides)
    values["INSTANCE_PATH"] = str(instance_path)
    sections: Sections = {}
    for key in [key for key, value in values.items() if isinstance(value, Mapping)]:
        section = values.pop(key)
        sections.setdefault(key.lower(), {}).update({k.upper(): v for k, v in section.items()})
    return validate(values), sections


def instance_path(overrides: Mapping[str, Any] | None, environ: Mapping[str, str]) -> str | None:
    """The instance folder asked for by the mapping or the environment (None: Flask's default).

    Read before the other layers because it says where the instance config file is.
    """
    chosen = (overrides or {}).get("INSTANCE_PATH") or environ.get(f"{ENV_PREFIX}_INSTANCE_PATH")
    return str(Path(chosen).resolve()) if chosen else None


def describe() -> list[tuple[str, str, str, str]]:
    """(key, default, environment variable, description) for every key, for docs and CLI."""
    rows = []
    for name, field in HostConfigSchema().fields.items():
        default = field.load_default
        if callable(default):
            default = default()
        rows.append(
            (name, repr(default), f"{ENV_PREFIX}_{name}", str(field.metadata.get("description")))
        )
    return rows
