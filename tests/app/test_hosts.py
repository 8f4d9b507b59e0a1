"""The Host header: trusted names only, a 400 problem otherwise, and never in a generated URL."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.test import EnvironBuilder, TestResponse, run_wsgi_app
from werkzeug.wrappers import Request

from app import ConfigError, create_app
from app.hosts import INVALID_HOST, MISSING_HOST, UNTRUSTED_HOST, local_location
from tests.conftest import AppFactory, upgrade
from tests.test_gunicorn import running

LIVE = "/api/v1/health/live"
TRUSTED = ["localhost", ".example.test"]
STRONG_KEY = "k3Y-" + "abcdefghijklmnopqrstuvwxyz0123456789"
ACCOUNTS_KEYS = {"SIGNING_KEYS": {"k1": "s1gning-" + "abcdefghijklmnopqrstuvwxyz0123456789"}}
ADMIN = ("admin@example.com", "correct horse battery staple")


def get(app: Flask, path: str, host: str | None = "localhost", **environ: str) -> TestResponse:
    """GET ``path`` exactly as given (a test client reads ``//x`` as a host, and always sends
    a Host header), with ``host`` as the Host header (None: no header)."""
    built = EnvironBuilder(path="/").get_environ()
    built.update({"PATH_INFO": path, "HTTP_HOST": host, **environ})
    if host is None:
        del built["HTTP_HOST"]
    body, status, headers = run_wsgi_app(app, built, buffered=True)
    return TestResponse(body, status, headers, request=Request(built))


def detail(response: TestResponse) -> str:
    assert response.mimetype == "application/problem+json"
    return str(response.json["detail"])  # type: ignore[index]


@pytest.fixture
def trusting(make_app: AppFactory) -> Flask:
    return make_app(TRUSTED_HOSTS=TRUSTED)


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8443", "LocalHost", "api.example.test", "a.b.example.test"]
)
def test_a_trusted_host_is_served(trusting: Flask, host: str) -> None:
    assert get(trusting, LIVE, host).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "example.test.evil.example", "notexample.test", "127.0.0.1"]
)
def test_an_untrusted_host_is_a_400_problem(trusting: Flask, host: str) -> None:
    response = get(trusting, LIVE, host)
    assert response.status_code == 400
    assert detail(response) == UNTRUSTED_HOST
    assert host not in response.get_data(as_text=True)


def test_a_forwarded_host_from_a_trusted_proxy_must_be_trusted_too(make_app: AppFactory) -> None:
    app = make_app(TRUSTED_HOSTS=TRUSTED, TRUSTED_PROXY_COUNT=1)
    forwarded = app.test_client().get(
        LIVE, headers={"Host": "localhost", "X-Forwarded-Host": "evil.example"}
    )
    assert forwarded.status_code == 400
    assert detail(forwarded) == UNTRUSTED_HOST
    proxied = app.test_client().get(
        LIVE, headers={"Host": "10.0.0.5", "X-Forwarded-Host": "api.example.test"}
    )
    assert proxied.status_code == 200


def test_an_untrusted_host_is_refused_before_the_rate_limit_counts(make_app: AppFactory) -> None:
    app = make_app(TRUSTED_HOSTS=TRUSTED, RATELIMIT_DEFAULT=["1/minute"])
    refused = [get(app, "/api/openapi.json", "evil.example").status_code for _ in range(3)]
    assert refused == [400, 400, 400]
    assert get(app, "/api/openapi.json").status_code == 200  # its one request is left


@pytest.mark.parametrize("trusted", [[], TRUSTED])
@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/2"])
def test_a_request_without_host_is_a_400_problem_from_http_1_1_on(
    make_app: AppFactory, trusted: list[str], protocol: str
) -> None:
    app = make_app(TRUSTED_HOSTS=trusted)
    for host in (None, ""):
        response = get(app, LIVE, host, SERVER_PROTOCOL=protocol)
        assert response.status_code == 400
        assert detail(response) == MISSING_HOST


@pytest.mark.parametrize(
    ("trusted", "status"), [([], 200), (["localhost"], 200), (["api.example.test"], 400)]
)
def test_http_1_0_may_leave_the_host_out_if_the_servers_name_is_trusted(
    make_app: AppFactory, trusted: list[str], status: int
) -> None:
    response = get(make_app(TRUSTED_HOSTS=trusted), LIVE, None, SERVER_PROTOCOL="HTTP/1.0")
    assert response.status_code == status  # SERVER_NAME is localhost


@pytest.mark.parametrize("host", ["evil example", "evil.example/x", "evil.example:99999", "é.x"])
def test_a_malformed_host_is_a_400_problem(app: Flask, host: str) -> None:
    response = get(app, LIVE, host)
    assert response.status_code == 400
    assert detail(response) == INVALID_HOST


@pytest.mark.parametrize("trusted", [[], TRUSTED])
@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        ("/api//v1/health/live", "", LIVE),
        ("/api//v1//health/live", "a=1&b=%2F%2Fx", f"{LIVE}?a=1&b=%2F%2Fx"),
        ("//api//v1/health/live", "", LIVE),
        ("/api/probe/slash", "", "/api/probe/slash/"),
    ],
)
def test_routing_redirects_are_path_only(
    make_app: AppFactory, trusted: list[str], path: str, query: str, location: str
) -> None:
    app = make_app(TRUSTED_HOSTS=trusted)
    app.add_url_rule("/api/probe/slash/", "slash", lambda: "slashed")  # strict slashes
    host = "api.example.test" if trusted else "evil.example"
    response = get(app, path, host, QUERY_STRING=query)
    assert response.status_code == 308
    assert response.headers["Location"] == location
    assert "example" not in str(response.headers)
    assert response.get_data() == b""


def test_a_redirect_under_a_script_root_keeps_it(app: Flask) -> None:
    response = get(app, "/api//v1/health/live", "evil.example", SCRIPT_NAME="/edge")
    assert response.status_code == 308
    assert response.headers["Location"] == f"/edge{LIVE}"


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/",
        "//evil.example/api/v1/health/live",
        "///evil.example//x",
        "/\\evil.example/",
    ],
)
def test_a_path_naming_another_host_never_redirects_there(app: Flask, path: str) -> None:
    response = get(app, path)
    assert response.status_code == 404
    assert "Location" not in response.headers


def test_a_catch_all_route_with_a_trailing_slash_redirects_on_this_server(app: Flask) -> None:
    app.add_url_rule("/<path:anything>/", "anything", lambda anything: anything)
    for path in ("//evil.example", "///evil.example/x", "/\\evil.example"):
        location = get(app, path, "evil.example").headers["Location"]
        assert location.startswith("/")
        assert not location.startswith(("//", "/\\"))


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/a/b", "", "/a/b"),
        ("//evil.example/x", "q=1", "/evil.example/x?q=1"),
        ("/\\evil.example", "", "/evil.example"),
        ("\\/\\/evil.example", "", "/evil.example"),
        ("", "", "/"),
    ],
)
def test_local_location_starts_with_one_slash(path: str, query: str, expected: str) -> None:
    assert local_location(path, query) == expected


def test_link_and_location_headers_never_name_the_host(make_app: AppFactory) -> None:
    app = make_app()
    upgrade(app)
    email, password = ADMIN
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["accounts", "create-admin", "--email", email, "--password", password]
    )
    assert created.exit_code == 0, created.output
    client = app.test_client()
    evil = {"Host": "evil.example"}
    login = client.post(
        "/api/v1/accounts/tokens", json={"email": email, "password": password}, headers=evil
    )
    bearer = {**evil, "Authorization": f"Bearer {login.json['access_token']}"}  # type: ignore[index]
    project = client.post("/api/v1/tasks/projects", json={"name": "p"}, headers=bearer)
    assert project.status_code == 201
    assert project.headers["Location"].startswith("/api/v1/tasks/projects/")
    listed = client.get("/api/v1/accounts/users?page_size=1", headers=bearer)
    assert listed.status_code == 200
    assert listed.headers["Link"].startswith("</api/v1/accounts/users?")
    for response in (login, project, listed):
        assert "evil" not in str(response.headers)


def test_production_without_trusted_hosts_warns_at_startup(
    instance_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    production = {
        "INSTANCE_PATH": str(instance_path),
        "ENVIRONMENT": "production",
        "SECRET_KEY": STRONG_KEY,
        "accounts": ACCOUNTS_KEYS,
    }
    create_app(production)
    create_app({**production, "TRUSTED_HOSTS": ["api.example.test"]})
    create_app({**production, "ENVIRONMENT": "development"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warned = [line for line in lines if line["logger"] == "app.hosts"]
    assert len(warned) == 1
    assert warned[0]["level"] == "WARNING"
    assert "TRUSTED_HOSTS is not set" in warned[0]["message"]


def test_trusted_hosts_from_the_environment(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERSTRIP_TRUSTED_HOSTS", '["api.example.test", "127.0.0.1"]')
    app = make_app()
    assert app.extensions["powerstrip.config"].TRUSTED_HOSTS == ("api.example.test", "127.0.0.1")
    assert get(app, LIVE, "127.0.0.1:8000").status_code == 200
    assert get(app, LIVE, "localhost").status_code == 400


def test_without_trusted_hosts_any_host_is_served(app: Flask) -> None:
    assert get(app, LIVE, "anything.example").status_code == 200


def test_an_untrusted_host_with_tracing_on_is_a_400_problem(
    instance_path: Path, database_url: str
) -> None:
    """Flask's own TRUSTED_HOSTS would make the tracer's start_response raise: a bare 500."""
    exporter = InMemorySpanExporter()
    config = {"INSTANCE_PATH": str(instance_path), "DATABASE_URL": database_url}
    app = create_app(
        {**config, "ENVIRONMENT": "testing", "TRUSTED_HOSTS": TRUSTED}, span_exporter=exporter
    )
    try:
        response = get(app, LIVE, "evil.example")
        assert response.status_code == 400
        assert detail(response) == UNTRUSTED_HOST
        [span] = exporter.get_finished_spans()  # the request was traced, as a 400
        assert span.attributes is not None
        assert 400 in span.attributes.values()
    finally:
        app.extensions["powerstrip.database"].engine.dispose()


@pytest.mark.parametrize(
    "value", ["api.example.test:8443", "API.example.test", "bad host", "[::1]", "::1", "", "a/b"]
)
def test_a_trusted_host_must_be_a_lower_case_name_without_port(
    make_app: AppFactory, value: str
) -> None:
    with pytest.raises(
        ConfigError, match=r"^configuration key TRUSTED_HOSTS\.0: .*\(no port, no IPv6\)\.$"
    ):
        make_app(TRUSTED_HOSTS=[value])


def raw_request(port: int, lines: list[str]) -> bytes:
    """Send a request exactly as written (http.client always adds a Host) and read it all."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.e2e
def test_through_gunicorn(tmp_path: Path) -> None:
    with running(tmp_path, {"POWERSTRIP_TRUSTED_HOSTS": '["127.0.0.1"]'}, workers=1) as server:
        untrusted, body = server.request("GET", LIVE, {"Host": "evil.example"})
        assert untrusted.status == 400
        assert untrusted.getheader("Content-Type") == "application/problem+json"
        assert json.loads(body)["detail"] == UNTRUSTED_HOST

        merged, _ = server.request("GET", "/api//v1/health/live?x=1")
        assert merged.status == 308
        assert merged.getheader("Location") == f"{LIVE}?x=1"

        off_site, _ = server.request("GET", "//evil.example/api/v1/health/live")
        assert off_site.status == 404
        assert off_site.getheader("Location") is None

        hostless = raw_request(server.port, [f"GET {LIVE} HTTP/1.1"])
        assert hostless.startswith(b"HTTP/1.1 400 ")
        assert b"application/problem+json" in hostless
        assert MISSING_HOST.encode() in hostless

        old = raw_request(server.port, [f"GET {LIVE} HTTP/1.0"])
        assert old.startswith(b"HTTP/1.1 200 ") or old.startswith(b"HTTP/1.0 200 ")
