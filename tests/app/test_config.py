"""Configuration layers, validation and redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from app import ConfigError, create_app
from app.config import DEVELOPMENT_SECRET_KEY, REDACTED, HostConfig, describe, redacted

STRONG_KEY = "k3Y-" + "abcdefghijklmnopqrstuvwxyz0123456789"
# Production also needs the accounts plugin's signing keys.
ACCOUNTS_KEYS = {"SIGNING_KEYS": {"k1": "s1gning-" + "abcdefghijklmnopqrstuvwxyz0123456789"}}


def host_config(app: Flask) -> HostConfig:
    return app.extensions["powerstrip.config"]  # type: ignore[no-any-return]


def build(instance_path: Path, **overrides: object) -> Flask:
    return create_app({"INSTANCE_PATH": str(instance_path), **overrides})


def test_defaults(instance_path: Path) -> None:
    config = host_config(build(instance_path, ENVIRONMENT="development"))
    assert config.MAX_CONTENT_LENGTH == 1024 * 1024
    assert config.RATELIMIT_STORAGE_URI == "memory://"
    assert config.CORS_ORIGINS == ()
    assert config.TRUSTED_PROXY_COUNT == 0
    assert config.SECRET_KEY == DEVELOPMENT_SECRET_KEY
    assert str(instance_path) == config.INSTANCE_PATH
    assert not config.is_production


def test_layers_file_then_env_then_mapping(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (instance_path / "config.toml").write_text(
        'ENVIRONMENT = "development"\nLOG_LEVEL = "DEBUG"\nMAX_CONTENT_LENGTH = 10\n'
        "TRUSTED_PROXY_COUNT = 1\n"
    )
    monkeypatch.setenv("POWERSTRIP_MAX_CONTENT_LENGTH", "20")
    monkeypatch.setenv("POWERSTRIP_TRUSTED_PROXY_COUNT", "2")
    monkeypatch.setenv("POWERSTRIP_CORS_ORIGINS", '["https://app.example.com"]')
    app = build(instance_path, TRUSTED_PROXY_COUNT=3)
    config = host_config(app)
    assert config.LOG_LEVEL == "DEBUG"  # file
    assert config.MAX_CONTENT_LENGTH == 20  # env beats file
    assert app.config["MAX_CONTENT_LENGTH"] == 20
    assert config.CORS_ORIGINS == ("https://app.example.com",)  # env parsed as JSON
    assert config.TRUSTED_PROXY_COUNT == 3  # mapping beats env


def test_instance_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text('LOG_LEVEL = "ERROR"\n')
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(tmp_path))
    app = create_app({"ENVIRONMENT": "testing"})
    assert app.instance_path == str(tmp_path)
    assert host_config(app).LOG_LEVEL == "ERROR"


def test_section_for_an_unknown_plugin_is_reported_with_its_env_name(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERSTRIP_NOPE__DEEP", "1")
    with pytest.raises(
        ConfigError,
        match=r"^configuration section 'nope' \(env POWERSTRIP_NOPE__\*\): "
        r"no plugin of that name is installed$",
    ):
        build(instance_path, ENVIRONMENT="testing")


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"SECRETKEY": "x"}, r"key SECRETKEY: unknown key \(env POWERSTRIP_SECRETKEY\)"),
        ({"MAX_CONTENT_LENGTH": "big"}, r"key MAX_CONTENT_LENGTH: Not a valid integer"),
        ({"MAX_CONTENT_LENGTH": 0}, r"key MAX_CONTENT_LENGTH: Must be greater than or equal to 1"),
        ({"LOG_LEVEL": "LOUD"}, r"key LOG_LEVEL: Must be one of"),
        ({"ENVIRONMENT": "staging"}, r"key ENVIRONMENT: Must be one of"),
        ({"RATELIMIT_DEFAULT": ["lots"]}, r"key RATELIMIT_DEFAULT: 'lots' is not a rate limit"),
        ({"RATELIMIT_STORAGE_URI": "mongodb://x"}, r"key RATELIMIT_STORAGE_URI: Use memory://"),
        ({"CORS_ORIGINS": ["not a url"]}, r"key CORS_ORIGINS.0: Not a valid URL"),
        ({"TRUSTED_PROXY_COUNT": True}, r"key TRUSTED_PROXY_COUNT: Not a valid integer"),
        (
            {"DATABASE_READ_TIMEOUT": 15},  # the statement timeout's 15 s: not longer
            r"key DATABASE_READ_TIMEOUT: must be longer than DATABASE_STATEMENT_TIMEOUT "
            r"\(15000 ms\)",
        ),
        (
            {"DATABASE_READ_TIMEOUT": 2, "DATABASE_STATEMENT_TIMEOUT": 2500},
            r"key DATABASE_READ_TIMEOUT: must be longer than .* \(2500 ms\)",
        ),
        ({"DATABASE_READ_TIMEOUT": -1}, r"key DATABASE_READ_TIMEOUT: Must be greater than or"),
        (
            {"DATABASE_PREPARE_THRESHOLD": -1},
            r"key DATABASE_PREPARE_THRESHOLD: Must be greater than or",
        ),
        (
            {"DATABASE_SQLITE_SYNCHRONOUS": "OFF"},
            r"key DATABASE_SQLITE_SYNCHRONOUS: Must be one of",
        ),
    ],
)
def test_invalid_values_name_the_key(instance_path: Path, overrides: dict, pattern: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=pattern) as caught:
        build(instance_path, **{"ENVIRONMENT": "testing", **overrides})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("read", "statement"),
    [(16, 15000), (20, 0), (0, 15000), (0, 0)],  # 0: no limit (a role's own, say)
)
def test_the_read_timeout_is_longer_than_the_statement_timeout_or_either_is_off(
    instance_path: Path, read: int, statement: int
) -> None:
    config = host_config(
        build(
            instance_path,
            ENVIRONMENT="testing",
            DATABASE_READ_TIMEOUT=read,
            DATABASE_STATEMENT_TIMEOUT=statement,
        )
    )
    assert read == config.DATABASE_READ_TIMEOUT
    assert statement == config.DATABASE_STATEMENT_TIMEOUT


def test_production_requires_a_secret_key(instance_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key SECRET_KEY: required outside development"):
        build(instance_path, ENVIRONMENT="production")


def test_production_is_the_default_environment(instance_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        build(instance_path)


@pytest.mark.parametrize("key", ["short", "a" * 64, "abababababababababababababababab12"])
def test_production_refuses_a_weak_secret_key(instance_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=r"key SECRET_KEY: too weak"):
        build(instance_path, ENVIRONMENT="production", SECRET_KEY=key)


def test_production_refuses_the_development_key(instance_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key SECRET_KEY: the development key"):
        build(instance_path, ENVIRONMENT="production", SECRET_KEY=DEVELOPMENT_SECRET_KEY)


def test_production_accepts_a_strong_key(instance_path: Path) -> None:
    app = build(
        instance_path, ENVIRONMENT="production", SECRET_KEY=STRONG_KEY, accounts=ACCOUNTS_KEYS
    )
    assert app.config["SECRET_KEY"] == STRONG_KEY
    assert host_config(app).is_production
    assert not app.testing


def test_invalid_toml_is_one_line(instance_path: Path) -> None:
    (instance_path / "config.toml").write_text("LOG_LEVEL = \n")
    with pytest.raises(ConfigError, match=r"config.toml: not valid TOML") as caught:
        build(instance_path)
    assert "\n" not in str(caught.value)


def test_redaction_hides_secrets_and_url_passwords() -> None:
    values = {
        "SECRET_KEY": STRONG_KEY,
        "RATELIMIT_STORAGE_URI": "redis://user:s3cret@cache.internal:6380/0",
        "LOG_LEVEL": "INFO",
    }
    safe = redacted(values)
    assert safe["SECRET_KEY"] == REDACTED
    assert safe["RATELIMIT_STORAGE_URI"] == f"redis://user:{REDACTED}@cache.internal:6380/0"
    assert safe["LOG_LEVEL"] == "INFO"
    assert redacted({"RATELIMIT_STORAGE_URI": "memory://"}) == {
        "RATELIMIT_STORAGE_URI": "memory://"
    }
    assert redacted({"RATELIMIT_STORAGE_URI": "redis://:pw@h"})["RATELIMIT_STORAGE_URI"] == (
        f"redis://:{REDACTED}@h"
    )
    assert redacted({"SECRET_KEY": None}) == {"SECRET_KEY": None}


def test_repr_of_config_is_redacted(instance_path: Path) -> None:
    app = build(
        instance_path, ENVIRONMENT="production", SECRET_KEY=STRONG_KEY, accounts=ACCOUNTS_KEYS
    )
    assert STRONG_KEY not in repr(host_config(app))
    assert REDACTED in repr(host_config(app))


def test_describe_lists_every_key_with_its_env_name() -> None:
    rows = {name: (default, env) for name, default, env, _ in describe()}
    assert rows["MAX_CONTENT_LENGTH"] == ("1048576", "POWERSTRIP_MAX_CONTENT_LENGTH")
    assert rows["CORS_ORIGINS"] == ("[]", "POWERSTRIP_CORS_ORIGINS")
    assert set(rows) == set(HostConfig.__dataclass_fields__)


def test_config_show_prints_redacted_json(instance_path: Path) -> None:
    app = build(
        instance_path,
        ENVIRONMENT="production",
        SECRET_KEY=STRONG_KEY,
        accounts=ACCOUNTS_KEYS,
        RATELIMIT_STORAGE_URI="redis://:pw@127.0.0.1:6379/0",
    )
    result = app.test_cli_runner().invoke(args=["config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["SECRET_KEY"] == REDACTED
    assert shown["RATELIMIT_STORAGE_URI"] == f"redis://:{REDACTED}@127.0.0.1:6379/0"
    assert shown["ENVIRONMENT"] == "production"
    assert STRONG_KEY not in result.output
