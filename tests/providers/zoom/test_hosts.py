"""A Zoom account with many hosts: the sweep lists every active user (``GET /users``, paged),
then each one's meetings, on the account's budget; ``user_ids`` / ``ZOOM_USER_IDS`` (and the
older ``ZOOM_USER_ID``) limit it. Against the simulated Zoom over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from meetsync.events import Event
from meetsync.providers import Window
from meetsync.providers.http import ClientOptions, PermanentApiError, RequestBudget
from meetsync.providers.keys import settings_from_env
from meetsync.providers.zoom import PROVIDER, ZoomClient, users_of
from meetsync.providers.zoom.simulator import LIST_MEETINGS, LIST_USERS, User, ZoomSim
from meetsync.settings import Settings, SettingsError
from meetsync.simulator import ManualClock, serve_in_background
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler
from tests.providers.zoom.test_client import FakeZoom

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
OAUTH = "POST /oauth/token"


def hosted(sim: ZoomSim, users: list[User], per_user: int = 2) -> dict[str, set[str]]:
    """``per_user`` upcoming meetings for each of ``users`` (their webhooks dropped): the ids
    by host id."""
    made: dict[str, set[str]] = {}
    for n, user in enumerate(users):
        for k in range(per_user):
            created = sim.create(host=user, start_time=START + timedelta(hours=1 + n + k))
            made.setdefault(user.id, set()).add(str(created.meeting_id))
    return made


@pytest.fixture
def zoom() -> Iterator[tuple[ZoomSim, ManualClock, str]]:
    """Five active hosts (the owner first) and one deactivated one, two meetings each."""
    clock = ManualClock()
    sim = ZoomSim(31, start=START, clock=clock, users_per_account=5)
    sim.add_user(name="Gone Host", status="inactive")
    with serve_in_background(sim.asgi_app(per_second_limit=10_000)) as root:
        yield sim, clock, root


def client(sim: ZoomSim, root: str, budget: RequestBudget | None = None,
           **options: object) -> ZoomClient:
    account = sim.account
    return ZoomClient(account_id=account.account_id, client_id=account.client_id,
                      client_secret=account.client_secret,
                      budget=budget or RequestBudget(10_000, window=1.0),
                      api_url=f"{root}/v2", oauth_url=f"{root}/oauth/token",
                      **options)  # type: ignore[arg-type]


async def swept(api: ZoomClient) -> tuple[set[str], list[str]]:
    ids: set[str] = set()
    errors: list[str] = []
    async with api:
        async for page in api.sweep(Window(), event_id=lambda i: f"s:{i}", clock=lambda: START):
            ids |= {event.appointment_id for event in page.events}
            errors += page.errors
    return ids, errors


def env(sim: ZoomSim, root: str, **extra: str) -> dict[str, str]:
    account = sim.account
    return {"ZOOM_API_URL": f"{root}/v2", "ZOOM_OAUTH_URL": f"{root}/oauth/token",
            "ZOOM_ACCOUNT_ID": account.account_id, "ZOOM_CLIENT_ID": account.client_id,
            "ZOOM_CLIENT_SECRET": account.client_secret, **extra}


def api_from(settings: Settings, name: str = "default") -> ZoomClient:
    account = settings.account("zoom", name)
    assert account is not None
    api = PROVIDER.api(account, PROVIDER.budget(account))
    assert api is not None
    return api


async def test_the_sim_pages_its_users(zoom: tuple[ZoomSim, ManualClock, str]) -> None:
    sim, _, root = zoom
    async with client(sim, root) as api:
        token = await api.access_token()
    headers = {"authorization": f"Bearer {token}"}
    pages, cursor = [], ""
    async with httpx.AsyncClient(base_url=f"{root}/v2", headers=headers) as http:
        while True:
            params = {"page_size": "2"} | ({"next_page_token": cursor} if cursor else {})
            body = (await http.get("/users", params=params)).json()
            pages.append(body)
            if not (cursor := body["next_page_token"]):
                break
        inactive = (await http.get("/users", params={"status": "inactive"})).json()
        assert (await http.get("/users", params={"status": "gone"})).status_code == 400
    assert [len(p["users"]) for p in pages] == [2, 2, 1]
    assert {(p["total_records"], p["page_size"], p["page_count"]) for p in pages} == {(5, 2, 3)}
    assert [u["id"] for p in pages for u in p["users"]] == [u.id for u in sim.account.users[:5]]
    assert {u["status"] for p in pages for u in p["users"]} == {"active"}
    assert [u["email"] for u in inactive["users"]] == [sim.account.users[5].email]


async def test_the_sweep_covers_every_active_host_across_user_pages(
    zoom: tuple[ZoomSim, ManualClock, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _, root = zoom
    monkeypatch.setattr("meetsync.providers.zoom.client.USERS_PAGE_SIZE", 2)  # 5 users: 3 pages
    made = hosted(sim, sim.account.users)
    gone = sim.account.users[5]
    ids, errors = await swept(client(sim, root))
    assert errors == []
    assert ids == set().union(*(made[u.id] for u in sim.account.users[:5]))
    assert not ids & made[gone.id]  # a deactivated user is not swept
    assert sim.calls[LIST_USERS] == 3
    assert sim.calls[LIST_MEETINGS] == 2 * 5  # type=live and type=scheduled, per active host


async def test_the_settings_limit_the_sweep_to_listed_users(
    zoom: tuple[ZoomSim, ManualClock, str]
) -> None:
    sim, _, root = zoom
    users = sim.account.users
    made = hosted(sim, users)
    # by id and by email; blanks and repeats ignored
    settings = settings_from_env(env(sim, root, ZOOM_USER_IDS=f"{users[1].id}, {users[3].email},,"
                                                              f"{users[1].id}"))
    ids, errors = await swept(api_from(settings))
    assert errors == [] and ids == made[users[1].id] | made[users[3].id]
    assert sim.calls[LIST_USERS] == 0 and sim.calls[LIST_MEETINGS] == 4

    # ZOOM_USER_ID keeps working for one
    ids, _ = await swept(api_from(settings_from_env(env(sim, root, ZOOM_USER_ID=users[2].id))))
    assert ids == made[users[2].id]
    ids, _ = await swept(api_from(settings_from_env(env(sim, root, ZOOM_USER_ID="me"))))
    assert ids == made[users[0].id]  # the owner


async def test_a_listed_user_zoom_does_not_know_is_an_error_not_a_failed_sweep(
    zoom: tuple[ZoomSim, ManualClock, str]
) -> None:
    sim, _, root = zoom
    made = hosted(sim, sim.account.users[:1])
    ids, errors = await swept(client(sim, root, user_ids=["nobody@example.com", "me"]))
    assert ids == made[sim.account.users[0].id]
    assert errors == ["user 'nobody@example.com': not found at Zoom (HTTP 404); check user_ids"]


async def test_a_users_listing_zoom_refuses_says_which_scope_or_setting() -> None:
    zoom = FakeZoom()  # a scripted Zoom without GET /users (as for an app lacking the scope)
    with serve_in_background(zoom.app()) as url:
        api = ZoomClient(account_id="acct1", client_id="cid", client_secret="csecret",
                         budget=RequestBudget(100, window=1.0), api_url=f"{url}/v2",
                         oauth_url=f"{url}/oauth/token")
        with pytest.raises(PermanentApiError) as caught:
            await swept(api)
    assert str(caught.value).startswith("GET /users: HTTP 404 (")
    assert "user:read:list_users:admin" in str(caught.value) and "csecret" not in str(caught.value)
    assert zoom.tokens == 1 and zoom.seen == []  # no meetings listed


def test_user_ids_in_the_file(tmp_path: Path) -> None:
    config = tmp_path / "meetsync.toml"
    config.write_text('[providers.zoom.accounts.eu]\naccount_id = "a"\nclient_id = "c"\n'
                      'client_secret = "s"\nuser_ids = ["u1", "host@example.com"]\n'
                      'user_id = "u1"\n\n[providers.zoom.accounts.us]\n'
                      'webhook_secret_token = "t"\n')
    settings = settings_from_env({"MEETSYNC_CONFIG": str(config)})
    eu, us = settings.account("zoom", "eu"), settings.account("zoom", "us")
    assert eu is not None and us is not None
    assert users_of(eu) == ("u1", "host@example.com") and users_of(us) is None
    config.write_text('[providers.zoom.accounts.eu]\nuser_ids = 3\n')
    with pytest.raises(SettingsError, match="user_ids must be a string or a list of strings"):
        settings_from_env({"MEETSYNC_CONFIG": str(config)})


async def test_the_sweep_stays_within_the_accounts_budget(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Zoom answers 429 past 4 requests in any second; the client's budget is the same 4/s on
    # the same (manual) clock: not one 429, and the clock moved on as the budget made it wait.
    monkeypatch.setattr("meetsync.providers.zoom.client.USERS_PAGE_SIZE", 4)
    clock = ManualClock()
    sim = ZoomSim(32, start=START, clock=clock, users_per_account=9)
    made = hosted(sim, sim.account.users, per_user=1)
    budget = RequestBudget(4, window=1.0, clock=clock, sleep=clock.auto_sleep)
    with serve_in_background(sim.asgi_app(per_second_limit=4)) as root:
        api = client(sim, root, budget, clock=clock, options=ClientOptions(sleep=clock.auto_sleep))
        ids, errors = await swept(api)
    assert errors == [] and ids == set().union(*made.values())
    requests = 1 + 3 + 2 * 9  # the token, three pages of users, two listings per host
    assert sum(sim.calls.values()) == budget.spent == requests
    assert not [key for key in sim.statuses if key[1] == 429] and api.rate_limited == 0
    assert clock.now >= (requests - 4) / 4  # it waited for the budget, not for Zoom's 429s


async def test_the_reconciler_finds_a_second_hosts_meetings_without_webhooks(
    db_path: Path | str
) -> None:
    sim = ZoomSim(33, start=START, users_per_account=2)
    owner, second = sim.account.users
    delivered = [sim.create(host=owner, start_time=START + timedelta(hours=2))]
    unheard = hosted(sim, [second], per_user=3)[second.id]  # no webhook sent for these
    hooks = PROVIDER.webhooks(settings_from_env(
        {"ZOOM_WEBHOOK_SECRET_TOKEN": sim.account.secret_token}).accounts_of("zoom"))
    store = StoreThread(lambda: open_store(db_path, clock=lambda: START))
    try:
        for delivery in delivered:
            account = hooks.verify(delivery.body, delivery.headers(sim.account.secret_token))
            parsed = hooks.parse(delivery.body, account)
            assert isinstance(parsed, Event)
            await store.run(lambda s, e=parsed: s.apply([e]))  # type: ignore[misc]
        with serve_in_background(sim.asgi_app()) as root:
            api = api_from(settings_from_env(env(sim, root)))
            try:
                run = await Reconciler(api, store, horizon=PROVIDER.horizon,
                                       clock=lambda: START).run()
            finally:
                await api.aclose()
        held = await store.run(lambda s: s.snapshots(sorted(unheard), provider="zoom"))
    finally:
        store.close()
    assert run.outcome == "success", run.errors
    assert set(held) == unheard
    for meeting_id in unheard:
        truth = sim.meeting(int(meeting_id))
        assert held[meeting_id]["start_at"] == truth["start_time"]
        assert held[meeting_id]["meeting.join_url"] == truth["join_url"]
