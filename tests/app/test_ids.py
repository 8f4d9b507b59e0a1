"""Ids in paths are bounded to 64 bits: a larger number names nothing (a 404 problem).

Before, SQLite's driver failed on it (OverflowError: a 500). Between 2^31 and 2^63, a
PostgreSQL ``integer`` column refuses the value: a 4xx problem, never a 500.
"""

from __future__ import annotations

import pytest

from powerstrip.testing import AppFactory

BY_ID = "/api/v1/hello/greetings/by-id/"


@pytest.mark.parametrize(
    "greeting_id",
    [str(2**63), str(10**26), "9" * 5000, "-1", "1e3", "0x10"],
)
def test_an_id_beyond_64_bits_names_nothing(
    powerstrip_make_app: AppFactory, greeting_id: str
) -> None:
    response = powerstrip_make_app("hello").test_client().get(BY_ID + greeting_id)
    assert (response.status_code, response.mimetype) == (404, "application/problem+json")


@pytest.mark.parametrize("greeting_id", [2**31 - 1, 2**31, 2**63 - 1])
def test_an_id_within_64_bits_is_looked_up(
    powerstrip_make_app: AppFactory, greeting_id: int
) -> None:
    response = powerstrip_make_app("hello").test_client().get(f"{BY_ID}{greeting_id}")
    assert response.status_code in {404, 422}, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
