"""PRINCIPAL_CACHE_SECONDS: authentication's owner look-ups kept for a window, and only then."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import injector
import pytest

from app import StartupError, create_app
from plugins.accounts.lookups import LookupCache, OwnerLookups
from plugins.accounts.repository import AccountsRepository
from powerstrip.cli import INJECTOR
from tests.conftest import AppFactory, upgrade
from tests.plugins.accounts.conftest import PASSWORD, Api, FakesModule, MovableClock, create_admin
from tests.plugins.accounts.test_authentication import ME, statements

WINDOW = 30


class Ticks:
    """A monotonic timer the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer_lookups(seen: list[str]) -> list[str]:
    """The statements among ``seen`` that look a bearer token's owner up."""
    return [s for s in seen if "revoked_access_tokens" in s and s.lstrip().startswith("SELECT")]


def key_statements(seen: list[str]) -> list[str]:
    """The statements among ``seen`` on API keys, each shortened to its verb."""
    return [s.split()[0] for s in seen if "api_keys" in s]


def new_key(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    body = {"name": "ci", "scopes": ["accounts:self"]}
    created = api.client.post("/api/v1/accounts/api-keys", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    return created.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def kept(
    instance_path: Path, database_url: str, clock: MovableClock, ticks: Ticks
) -> Iterator[Api]:
    """An admin's :class:`Api` on an app whose look-ups are kept ``WINDOW`` seconds of
    ``ticks``."""

    class KeptModule(injector.Module):
        def configure(self, binder: injector.Binder) -> None:
            binder.bind(OwnerLookups, to=OwnerLookups(WINDOW, ticks))

    config = {
        "ENVIRONMENT": "testing",
        "INSTANCE_PATH": str(instance_path),
        "DATABASE_URL": database_url,
        "RATELIMIT_ENABLED": False,
        # A reactivated owner's keys work again (tests a refused look-up not being kept).
        "accounts": {"REVOKE_API_KEYS_ON_DEACTIVATION": False},
    }
    app = create_app(config, modules=[FakesModule(clock), KeptModule()])
    upgrade(app)
    yield create_admin(app)
    app.extensions["powerstrip.database"].engine.dispose()


def built(make_app: AppFactory, seconds: int) -> Api:
    app = make_app(accounts={"PRINCIPAL_CACHE_SECONDS": seconds})
    upgrade(app)
    return create_admin(app)


@pytest.mark.parametrize(("seconds", "second_lookups"), [(0, 1), (300, 0)])
def test_the_setting_decides_whether_a_token_is_looked_up_on_every_request(
    make_app: AppFactory, seconds: int, second_lookups: int
) -> None:
    api = built(make_app, seconds)
    headers = api.admin_headers()
    with statements(api.app) as first:
        assert api.client.get(ME, headers=headers).status_code == 200
    with statements(api.app) as second:
        assert api.client.get(ME, headers=headers).status_code == 200
    assert len(bearer_lookups(first)) == 1
    assert len(bearer_lookups(second)) == second_lookups


def test_the_default_keeps_nothing(make_app: AppFactory) -> None:
    app = make_app()
    with app.app_context():
        lookups = app.extensions[INJECTOR].get(OwnerLookups)
    assert lookups.bearer.seconds == 0
    assert lookups.api_keys.seconds == 0


@pytest.mark.parametrize("seconds", [-1, 301])
def test_a_window_out_of_range_stops_startup(make_app: AppFactory, seconds: int) -> None:
    with pytest.raises(StartupError, match="PRINCIPAL_CACHE_SECONDS"):
        make_app(PLUGINS_STRICT=True, accounts={"PRINCIPAL_CACHE_SECONDS": seconds})


def test_a_logout_reaches_a_kept_token_when_its_window_ends(kept: Api, ticks: Ticks) -> None:
    tokens = kept.login()
    headers = kept.bearer(tokens["access_token"])
    assert kept.client.get(ME, headers=headers).status_code == 200
    out = kept.client.delete(
        "/api/v1/accounts/tokens", json={"refresh_token": tokens["refresh_token"]}, headers=headers
    )
    assert out.status_code == 204
    ticks.now += WINDOW - 1
    assert kept.client.get(ME, headers=headers).status_code == 200  # the documented trade-off
    ticks.now += 1
    assert kept.client.get(ME, headers=headers).status_code == 401


def test_using_a_kept_token_does_not_lengthen_its_window(kept: Api, ticks: Ticks) -> None:
    user_id = kept.create_user("dan@example.com")
    headers = kept.bearer(kept.login("dan@example.com", PASSWORD)["access_token"])
    assert kept.client.get(ME, headers=headers).status_code == 200
    changed = kept.client.patch(
        f"/api/v1/accounts/users/{user_id}",
        json={"is_active": False},
        headers=kept.admin_headers(),
    )
    assert changed.status_code == 200, changed.get_json()
    for _ in range(WINDOW - 1):
        ticks.now += 1
        assert kept.client.get(ME, headers=headers).status_code == 200
    ticks.now += 1
    assert kept.client.get(ME, headers=headers).status_code == 401


def test_a_token_s_window_counts_from_before_its_look_up(
    kept: Api, ticks: Ticks, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = kept.login()
    headers = kept.bearer(tokens["access_token"])
    look_up = AccountsRepository.bearer_owner

    def slow(repository: AccountsRepository, user_id: int, jti: str) -> Any:
        found = look_up(repository, user_id, jti)
        ticks.now += 1  # the look-up took 1 s
        return found

    monkeypatch.setattr(AccountsRepository, "bearer_owner", slow)
    assert kept.client.get(ME, headers=headers).status_code == 200
    monkeypatch.undo()
    with statements(kept.app) as seen:
        ticks.now += WINDOW - 2  # WINDOW - 1 after the look-up began
        assert kept.client.get(ME, headers=headers).status_code == 200
        ticks.now += 1  # its window is over, though not WINDOW since it was kept
        assert kept.client.get(ME, headers=headers).status_code == 200
    assert len(bearer_lookups(seen)) == 1  # the second one looked up again


def test_a_refused_token_is_looked_up_on_every_request(kept: Api, ticks: Ticks) -> None:
    tokens = kept.login()
    headers = kept.bearer(tokens["access_token"])
    kept.client.delete(
        "/api/v1/accounts/tokens", json={"refresh_token": tokens["refresh_token"]}, headers=headers
    )
    ticks.now += WINDOW  # the logout's own look-up, kept, is over
    for _ in range(2):
        with statements(kept.app) as seen:
            assert kept.client.get(ME, headers=headers).status_code == 401
        assert len(bearer_lookups(seen)) == 1


def test_a_kept_key_still_checks_its_secret_and_records_its_use(
    kept: Api, clock: MovableClock, ticks: Ticks
) -> None:
    admin = kept.admin_headers()  # minted before the clock moves
    created = new_key(kept, admin)
    key = created["key"]

    def call(value: str = key) -> tuple[int, list[str]]:
        with statements(kept.app) as seen:
            status = kept.client.get(ME, headers={"X-API-Key": value}).status_code
        return status, key_statements(seen)

    assert call() == (200, ["SELECT", "UPDATE"])  # looked up, its use recorded
    assert call() == (200, [])  # kept, its use recorded a moment ago
    assert call(key[:-1] + ("a" if key[-1] != "a" else "b"))[0] == 401  # the prefix is kept
    ticks.now += WINDOW - 1
    clock.offset += timedelta(minutes=2)
    assert call() == (200, ["UPDATE"])  # kept; its use recorded again once a minute
    assert call() == (200, [])
    revoked = kept.client.delete(f"/api/v1/accounts/api-keys/{created['id']}", headers=admin)
    assert revoked.status_code == 204
    assert call()[0] == 200  # until the window of its look-up ends: recording its use
    ticks.now += 1  # did not lengthen that window
    assert call() == (401, ["SELECT"])


def test_recording_a_use_as_the_window_ends_does_not_start_another(
    kept: Api, clock: MovableClock, ticks: Ticks, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = kept.admin_headers()
    created = new_key(kept, admin)
    headers = {"X-API-Key": created["key"]}
    assert kept.client.get(ME, headers=headers).status_code == 200  # looked up, kept
    revoked = kept.client.delete(f"/api/v1/accounts/api-keys/{created['id']}", headers=admin)
    assert revoked.status_code == 204
    ticks.now += WINDOW - 1
    clock.offset += timedelta(minutes=2)  # its use is recorded again, by a slow UPDATE
    record = AccountsRepository.api_key_used

    def slow(repository: AccountsRepository, key_id: int, when: datetime) -> None:
        record(repository, key_id, when)
        ticks.now += 1  # the window ends meanwhile

    monkeypatch.setattr(AccountsRepository, "api_key_used", slow)
    assert kept.client.get(ME, headers=headers).status_code == 200  # inside the window
    monkeypatch.undo()
    assert kept.client.get(ME, headers=headers).status_code == 401


def test_a_key_s_refusing_look_up_is_not_kept(kept: Api) -> None:
    admin = kept.admin_headers()
    key = new_key(kept, admin)["key"]
    wrong = key[:-1] + ("a" if key[-1] != "a" else "b")
    assert kept.client.get(ME, headers={"X-API-Key": wrong}).status_code == 401
    with statements(kept.app) as seen:
        assert kept.client.get(ME, headers={"X-API-Key": key}).status_code == 200
    assert key_statements(seen)[0] == "SELECT"  # the wrong secret's look-up was not kept

    user_id = kept.create_user("eve@example.com")
    eve = kept.bearer(kept.login("eve@example.com", PASSWORD)["access_token"])
    hers = {"X-API-Key": new_key(kept, eve)["key"]}

    def active(value: bool) -> None:
        changed = kept.client.patch(
            f"/api/v1/accounts/users/{user_id}", json={"is_active": value}, headers=admin
        )
        assert changed.status_code == 200, changed.get_json()

    active(False)
    assert kept.client.get(ME, headers=hers).status_code == 401  # looked up, refused
    active(True)
    assert kept.client.get(ME, headers=hers).status_code == 200  # at once


def test_a_window_of_zero_keeps_nothing() -> None:
    cache: LookupCache[str] = LookupCache(0)
    cache.put("a", "value", cache.now())
    cache.replace("a", "value", "other")
    assert cache.get("a") is None
    assert len(cache) == 0


def test_a_value_is_answered_for_its_window_from_its_look_up() -> None:
    ticks = Ticks()
    cache: LookupCache[str] = LookupCache(10, timer=ticks)
    looked_up = cache.now()
    ticks.now += 2  # the look-up took 2 s
    cache.put("a", "first", looked_up)
    ticks.now += 7
    cache.put("a", "second", cache.now())  # another thread's: in its place, not for longer
    assert cache.get("a") == "second"
    ticks.now += 1
    assert cache.get("a") is None
    cache.put("a", "third", cache.now())  # a new window
    ticks.now += 9
    assert cache.get("a") == "third"


def test_an_older_look_up_put_last_never_takes_a_newer_one_s_place() -> None:
    ticks = Ticks()
    cache: LookupCache[str] = LookupCache(10, timer=ticks)
    older = cache.now()
    ticks.now += 5
    cache.put("a", "newer", cache.now())  # looked up and put first
    cache.put("a", "older", older)  # a stalled thread's, put last
    assert cache.get("a") == "newer"
    ticks.now += 9  # the older look-up's window is over, the newer one's not
    assert cache.get("a") == "newer"
    cache.put("b", "slow", ticks.now - 10)  # a look-up slower than the window: not kept
    assert (cache.get("b"), len(cache)) == (None, 1)


def test_replacing_never_starts_a_window_nor_overwrites_a_newer_look_up() -> None:
    ticks = Ticks()
    cache: LookupCache[str] = LookupCache(10, timer=ticks)
    cache.replace("a", "old", "new")  # nothing kept: nothing to replace
    assert cache.get("a") is None
    cache.put("a", "old", cache.now())
    cache.replace("a", "old", "new")
    assert cache.get("a") == "new"
    cache.replace("a", "old", "newer")  # "a" holds another value by now
    assert cache.get("a") == "new"
    ticks.now += 10
    cache.replace("a", "new", "late")  # its window is over
    ticks.now -= 1
    assert cache.get("a") == "new"


def test_a_full_cache_drops_what_expired_and_else_keeps_no_more() -> None:
    ticks = Ticks()
    cache: LookupCache[int] = LookupCache(10, size=3, timer=ticks)
    cache.put("a", 1, cache.now())
    ticks.now += 5
    cache.put("b", 2, cache.now())
    cache.put("c", 3, cache.now())
    cache.put("d", 4, cache.now())  # full, nothing expired: not kept
    assert (cache.get("c"), cache.get("d"), len(cache)) == (3, None, 3)
    cache.put("c", 30, cache.now())  # a key it holds is still replaced
    assert cache.get("c") == 30
    ticks.now += 5  # "a" expires
    cache.put("d", 4, cache.now())
    assert (cache.get("a"), cache.get("b"), cache.get("d"), len(cache)) == (None, 2, 4, 3)
    ticks.now += 5  # "b" and "c" expire: dropped by the next put of a key not kept
    cache.put("e", 5, cache.now())
    assert (cache.get("d"), cache.get("e"), len(cache)) == (4, 5, 2)


def test_lookups_are_per_app(make_app: AppFactory) -> None:
    first, second = (make_app(accounts={"PRINCIPAL_CACHE_SECONDS": 5}) for _ in range(2))
    found = []
    for app in (first, second):
        with app.app_context():
            found.append(app.extensions[INJECTOR].get(OwnerLookups))
    assert found[0] is not found[1]
