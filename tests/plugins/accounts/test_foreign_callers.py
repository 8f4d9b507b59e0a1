"""A caller another authenticator vouches for is not an account: self-service refuses it.

Before, ``int(subject)`` answered such a caller with a 500 (the conformance suite found it).
"""

from __future__ import annotations

import pytest

from powerstrip.testing import AppFactory, caller_client


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/accounts/users/me", None),
        ("PUT", "/api/v1/accounts/users/me/password", {"current_password": "x", "password": "y"}),
        ("GET", "/api/v1/accounts/api-keys", None),
        ("POST", "/api/v1/accounts/api-keys", {"name": "ci"}),
    ],
)
def test_self_service_refuses_a_caller_that_is_no_account(
    powerstrip_make_app: AppFactory, method: str, path: str, body: object
) -> None:
    app = powerstrip_make_app("accounts")
    client = caller_client(app, "accounts:self", subject="someone-elsewhere")
    refused = client.open(path, method=method, json=body)
    assert (refused.status_code, refused.mimetype) == (403, "application/problem+json")
    assert refused.get_json()["detail"] == "Only an account of this API can do this."
