"""``flask accounts ...`` commands."""

from __future__ import annotations

from plugins.accounts.users import LAST_ADMIN
from tests.plugins.accounts.conftest import ADMIN_EMAIL, PASSWORD, Api


def test_create_admin_prompts_for_what_is_missing(api: Api) -> None:
    runner = api.app.test_cli_runner()
    result = runner.invoke(
        args=["accounts", "create-admin"],
        input="root@example.com\nsecond admin passphrase\nsecond admin passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert "second admin passphrase" not in result.output  # the password prompt hides input
    assert "created admin root@example.com" in result.output
    assert api.login("root@example.com", "second admin passphrase")["access_token"]


def test_create_admin_reports_problems(api: Api) -> None:
    runner = api.app.test_cli_runner()
    weak = runner.invoke(
        args=["accounts", "create-admin", "--email", "x@example.com", "--password", "short"]
    )
    assert weak.exit_code == 1
    assert "The password is not acceptable. password: Use at least 10 characters." in weak.output
    taken = runner.invoke(
        args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", PASSWORD]
    )
    assert "already exists" in taken.output


def test_create_api_key_and_deactivate(api: Api) -> None:
    runner = api.app.test_cli_runner()
    created = runner.invoke(
        args=[
            "accounts",
            "create-api-key",
            "--email",
            ADMIN_EMAIL,
            "--name",
            "deploy",
            "--scope",
            "accounts:self",
        ]
    )
    assert created.exit_code == 0, created.output
    key = created.output.strip().rsplit(" ", 1)[1]
    assert (
        api.client.get("/api/v1/accounts/users/me", headers={"X-API-Key": key}).status_code == 200
    )
    missing = runner.invoke(
        args=["accounts", "create-api-key", "--email", "no@example.com", "--name", "x"]
    )
    assert "No active user" in missing.output

    api.create_user("zed@example.com")
    out = runner.invoke(args=["accounts", "deactivate", "--email", "zed@example.com"])
    assert out.exit_code == 0, out.output
    assert "deactivated zed@example.com" in out.output
    login = api.client.post(
        "/api/v1/accounts/tokens", json={"email": "zed@example.com", "password": PASSWORD}
    )
    assert login.status_code == 401
    assert (
        "No user"
        in runner.invoke(args=["accounts", "deactivate", "--email", "no@example.com"]).output
    )


def test_deactivating_the_last_admin_fails_with_one_line(api: Api) -> None:
    runner = api.app.test_cli_runner()
    refused = runner.invoke(args=["accounts", "deactivate", "--email", ADMIN_EMAIL])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [f"Error: {LAST_ADMIN}"]
    assert api.login()["access_token"]  # still an active admin
    # the documented recovery: create another admin, then the first can go
    created = runner.invoke(
        args=["accounts", "create-admin", "--email", "root@example.com", "--password", PASSWORD]
    )
    assert created.exit_code == 0, created.output
    out = runner.invoke(args=["accounts", "deactivate", "--email", ADMIN_EMAIL])
    assert out.exit_code == 0, out.output
