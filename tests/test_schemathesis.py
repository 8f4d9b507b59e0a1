"""Schemathesis against the live OpenAPI document, in process, with an admin caller.

Every operation of ``/api/openapi.json`` (every enabled plugin's, the example plugin's when it
is installed) gets generated requests, positive and negative, through all of schemathesis's
checks (server errors, status codes, content types, response headers and schemas, negative
data rejection, positive data acceptance, ...), then its stateful phase follows the document's
links. Any failure means the document and the API disagree: fix the document or the API, not
this file. Runs on SQLite, and on PostgreSQL under ``make test-pg``.

Bounded and reproducible: hypothesis is derandomized (the same cases every run) with no
deadline, and the example counts keep the file within a few minutes on a 2-core machine.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from tests.conftest import AppFactory, upgrade

ADMIN_EMAIL = "fuzz-admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
EXAMPLES = 10  # per operation
STATEFUL_EXAMPLES = 15  # scenarios of the stateful phase
STATEFUL_STEPS = 6

# Operations that end the caller's own session run with fresh credentials of their own (a
# throwaway admin's), so every other case keeps the fixture admin's token.
OWN_SESSION = {
    ("DELETE", "/api/v1/accounts/tokens"),  # logout
    ("PUT", "/api/v1/accounts/users/me/password"),  # kills every session of the caller
}

ACCEPTED = [200, 201, 202, 204]
# positive_data_acceptance: a schema-valid request may still be refused for reasons that depend
# on the stored state, never on the request alone: 404 (the id names no row), 409 (a conflict
# with stored rows: a taken email, the last active admin demoted, a project's last owner) and
# 412 (If-Match with an ETag that is not the current one). Every operation documents each.
STATE = [404, 409, 412]
# Per operation, refusals on semantics a JSON Schema cannot express (each documented there):
SEMANTIC: dict[tuple[int, ...], list[str]] = {
    # 401: credentials that are not right (no schema knows a password or a live token).
    (401,): ["accounts_login_post", "accounts_refresh_post"],
    # 401/422: the current password is wrong (422 naming it); 422: the password policy (a common
    # password, one holding the email's name, shorter than the configured minimum) and a role
    # missing from the operator's role table (configuration, not a fixed enum).
    (401, 422): ["accounts_change_password_put"],
    (422,): [
        "accounts_create_user_post",
        "accounts_register_post",
        "accounts_update_user_patch",
        # Idempotency-Key reused for another request (state); an assignee or member that is
        # not a principal of the directory (semantic).
        "tasks_create_project_post",
        "tasks_create_task_post",
        "tasks_set_member_put",
        "tasks_patch_task_patch",
        "tasks_put_task_put",
        # Keyset lists: a cursor is opaque (only a next_cursor of this list is one), and page
        # with cursor is refused: a rule across two parameters, which OpenAPI cannot state
        # (both parameters' descriptions say so).
        "tasks_list_tasks_get",
        "hello_list_greetings_get",
    ],
}
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {
            # The host refuses NUL and lone surrogates in every string by design (app/inputs.py:
            # a 422 naming the field; no database column stores them), so generating them would
            # only test that one guard, which tests/app covers; the document does not weaken it.
            "allow-x00": False,
            "codec": "utf-8",
        },
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ACCEPTED + STATE},
            "missing_required_header": {
                # A write without its required If-Match answers 428 Precondition Required, the
                # status RFC 6585 defines for exactly that (documented on each such operation).
                "expected-statuses": [400, 401, 403, 406, 415, 422, 428],
            },
        },
        "operations": [
            {
                "include-operation-id": operation_id,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": sorted(ACCEPTED + STATE + list(statuses))
                    }
                },
            }
            for statuses, operation_ids in SEMANTIC.items()
            for operation_id in operation_ids
        ],
    }
)


@pytest.fixture
def fuzzed_app(make_app: AppFactory) -> Flask:
    """A migrated app with an admin (made by the CLI), no rate limits, open registration (so
    that ``POST /register`` is exercised, not only its 403)."""
    app = make_app(
        RATELIMIT_ENABLED=False,
        accounts={"REGISTRATION_OPEN": True},
        # The widest names the document states (its maxLength), so none is refused for length.
        hello={"MAX_NAME_LENGTH": 200},
    )
    upgrade(app)
    result = app.test_cli_runner().invoke(
        args=["accounts", "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
    )
    assert result.exit_code == 0, result.output
    return app


def _login(app: Flask, email: str, password: str) -> dict[str, str]:
    response = app.test_client().post(
        "/api/v1/accounts/tokens", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


class Callers:
    """The admin's headers for most cases; a fresh admin's for those ending their session."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.admin = _login(app, ADMIN_EMAIL, ADMIN_PASSWORD)
        self._numbers = itertools.count()

    def headers_for(self, case: Case) -> dict[str, str]:
        if (case.method.upper(), case.path) not in OWN_SESSION:
            return self.admin
        email = f"throwaway-{next(self._numbers)}@example.com"
        response = self.app.test_client().post(
            "/api/v1/accounts/users",
            json={"email": email, "password": ADMIN_PASSWORD, "role": "admin"},
            headers=self.admin,
        )
        assert response.status_code == 201, response.get_json()
        return _login(self.app, email, ADMIN_PASSWORD)


@pytest.fixture
def api_schema(fuzzed_app: Flask) -> Any:
    """The app's document, every case authenticated by :class:`Callers` (an auth provider, so
    schemathesis knows the credentials are real: its ``ignored_auth`` check then probes the
    operation without them and with invalid ones)."""
    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzzed_app, config=CONFIG)
    callers = Callers(fuzzed_app)

    class Caller:
        def get(self, case: Case, context: Any) -> dict[str, str]:  # noqa: ARG002
            return callers.headers_for(case)

        def set(self, case: Case, data: dict[str, str], context: Any) -> None:  # noqa: ARG002
            case.headers = {**(case.headers or {}), **data}

    loaded.auth(refresh_interval=None)(Caller)  # no caching: fresh credentials where needed
    # The suite's probe blueprint (tests/support.py) fails on purpose; it is not the API.
    return loaded.exclude(path_regex="^/api/probe/")


if not hasattr(pytest.Function, "_nodeid"):
    # schemathesis 4.32's from_fixture() renames the running item through ``_nodeid``, an
    # attribute pytest 9.2 no longer has (its node ids live in ``_id``): this gives the item one
    # to write, so each operation's subtest still reports under its own label.
    def _get_nodeid(item: pytest.Function) -> str:
        return str(item.__dict__.get("_schemathesis_nodeid", item.nodeid))

    def _set_nodeid(item: pytest.Function, value: str) -> None:
        item.__dict__["_schemathesis_nodeid"] = value

    pytest.Function._nodeid = property(_get_nodeid, _set_nodeid)  # type: ignore[attr-defined]

# The suite's probe blueprint (tests/support.py) fails on purpose; it is not the API.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex="^/api/probe/")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation(case: Case) -> None:
    case.call_and_validate()


def test_stateful(api_schema: Any) -> None:
    api_schema.as_state_machine().run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
