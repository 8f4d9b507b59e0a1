"""Settings: from the configuration or the environment, validated at startup."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from powerstrip.testing import AppFactory


def test_configurable(powerstrip_make_app: AppFactory) -> None:
    app = powerstrip_make_app("hello", config={"hello": {"GREETING": "Hi", "PUNCTUATION": "?"}})
    greeting = app.test_client().get("/api/v1/hello/greetings/Ada").get_json()
    assert greeting["message"] == "Hi, Ada?"


def test_configurable_through_the_environment(
    powerstrip_make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERSTRIP_HELLO__GREETING", "Hi")
    monkeypatch.setenv("POWERSTRIP_HELLO__PUNCTUATION", ".")
    client = powerstrip_make_app("hello").test_client()
    assert client.get("/api/v1/hello/greetings/Ada").get_json()["message"] == "Hi, Ada."


def test_invalid_setting_names_the_plugin(powerstrip_make_app: AppFactory) -> None:
    with pytest.raises(Exception, match=r"^plugin 'hello': invalid settings: PUNCTUATION"):
        powerstrip_make_app("hello", config={"hello": {"PUNCTUATION": "~"}})


@pytest.mark.parametrize("powerstrip_config", [{"hello": {"MAX_NAME_LENGTH": 3}}])
def test_names_longer_than_the_setting_are_refused(powerstrip_client: FlaskClient) -> None:
    refused = powerstrip_client.get("/api/v1/hello/greetings/Adam")
    assert refused.status_code == 422
    assert refused.get_json()["detail"] == "A name must be 1 to 3 characters."
