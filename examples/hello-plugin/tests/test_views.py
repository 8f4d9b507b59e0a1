"""The greetings API: served, validated, paged and documented."""

from __future__ import annotations

import json

from flask.testing import FlaskClient


def test_greets_by_name(powerstrip_client: FlaskClient) -> None:
    greeting = powerstrip_client.get("/api/v1/hello/greetings/Ada").get_json()
    assert greeting["message"] == "Hello, Ada!"
    assert greeting["at"].endswith("+00:00")


def test_stores_and_lists_greetings(powerstrip_client: FlaskClient) -> None:
    created = powerstrip_client.post("/api/v1/hello/greetings", json={"name": "Bob"})
    assert created.status_code == 201
    bob = created.get_json()
    assert (bob["name"], bob["message"]) == ("Bob", "Hello, Bob!")
    listed = powerstrip_client.get("/api/v1/hello/greetings").get_json()
    assert [(row["id"], row["name"]) for row in listed] == [(bob["id"], "Bob")]
    stored = powerstrip_client.get(f"/api/v1/hello/greetings/by-id/{bob['id']}")
    assert stored.get_json() == bob


def test_pages_newest_first_by_cursor(powerstrip_client: FlaskClient) -> None:
    for name in ("Bob", "Cy"):
        powerstrip_client.post("/api/v1/hello/greetings", json={"name": name})
    first = powerstrip_client.get("/api/v1/hello/greetings?cursor=&page_size=1")  # keyset
    assert [row["name"] for row in first.get_json()] == ["Cy"]
    cursor = json.loads(first.headers["X-Pagination"])["next_cursor"]
    second = powerstrip_client.get(f"/api/v1/hello/greetings?cursor={cursor}&page_size=1")
    assert [row["name"] for row in second.get_json()] == ["Bob"]
    assert json.loads(second.headers["X-Pagination"])["next_cursor"] is None


def test_answers_problems(powerstrip_client: FlaskClient) -> None:
    missing = powerstrip_client.get("/api/v1/hello/greetings/by-id/999999")
    assert (missing.status_code, missing.get_json()["detail"]) == (404, "No such greeting.")
    invalid = powerstrip_client.post("/api/v1/hello/greetings", json={})
    assert invalid.status_code == 422
    assert invalid.get_json()["errors"] == {"name": ["Missing data for required field."]}
    too_long = powerstrip_client.get("/api/v1/hello/greetings/" + "x" * 51)
    assert too_long.status_code == 422
    assert too_long.mimetype == "application/problem+json"


def test_documented_in_openapi(powerstrip_client: FlaskClient) -> None:
    spec = powerstrip_client.get("/api/openapi.json").get_json()
    hello_paths = sorted(path for path in spec["paths"] if path.startswith("/api/v1/hello/"))
    assert hello_paths == [
        "/api/v1/hello/greetings",
        "/api/v1/hello/greetings/by-id/{greeting_id}",
        "/api/v1/hello/greetings/{name}",
    ]
    get = spec["paths"]["/api/v1/hello/greetings/{name}"]["get"]
    post = spec["paths"]["/api/v1/hello/greetings"]["post"]
    assert get["tags"] == post["tags"] == ["hello"]
    assert get["operationId"] == "hello_greeting_get"
    assert post["operationId"] == "hello_create_greeting_post"
    assert {
        "name": "hello",
        "description": "Greets people: an example third-party plugin.",
    } in spec["tags"]
    assert "Greeting" in spec["components"]["schemas"]
    by_id = spec["paths"]["/api/v1/hello/greetings/by-id/{greeting_id}"]["get"]
    assert by_id["responses"]["404"] == {"$ref": "#/components/responses/NOT_FOUND"}
