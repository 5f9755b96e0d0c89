"""The simulated Zoom API over real HTTP: OAuth, fresh start URLs, paging, errors, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from meetsync.providers.zoom.simulator import ROUTES, ZoomSim
from meetsync.simulator import Faults, ManualClock, serve_in_background

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@dataclass
class Stack:
    sim: ZoomSim
    clock: ManualClock
    root: str
    http: httpx.AsyncClient

    async def token(self) -> str:
        account = self.sim.account
        response = await self.http.post(
            f"{self.root}/oauth/token",
            params={"grant_type": "account_credentials", "account_id": account.account_id},
            auth=(account.client_id, account.client_secret),
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def get(self, path: str, token: str, **params: str | int) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"}
        return await self.http.get(f"{self.root}/v2{path}", params=params, headers=headers)


def make_stack(**app_options: int | None) -> Iterator[tuple[ZoomSim, ManualClock, str]]:
    clock = ManualClock()
    sim = ZoomSim(11, start=START, clock=clock)
    sim.play(120)
    with serve_in_background(sim.asgi_app(**app_options)) as root:  # type: ignore[arg-type]
        yield sim, clock, root


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    options = getattr(request, "param", {"per_second_limit": 10_000})
    for sim, clock, root in make_stack(**options):
        async with httpx.AsyncClient(timeout=10) as http:
            yield Stack(sim, clock, root, http)


async def test_oauth_issues_a_bearer_token(stack: Stack) -> None:
    account = stack.sim.account
    response = await stack.http.post(
        f"{stack.root}/oauth/token",
        params={"grant_type": "account_credentials", "account_id": account.account_id},
        auth=(account.client_id, account.client_secret),
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600


async def test_oauth_accepts_form_body(stack: Stack) -> None:
    account = stack.sim.account
    response = await stack.http.post(
        f"{stack.root}/oauth/token",
        data={"grant_type": "account_credentials", "account_id": account.account_id},
        auth=(account.client_id, account.client_secret),
    )
    assert response.status_code == 200


async def test_oauth_rejects_wrong_credentials(stack: Stack) -> None:
    account = stack.sim.account
    response = await stack.http.post(
        f"{stack.root}/oauth/token",
        params={"grant_type": "account_credentials", "account_id": account.account_id},
        auth=(account.client_id, "wrong"),
    )
    assert response.status_code == 401
    assert response.json() == {
        "reason": "Invalid client_id or client_secret",
        "error": "invalid_client",
    }


@pytest.mark.parametrize("stack", [{"token_ttl_seconds": 60}], indirect=True)
async def test_tokens_expire_with_the_clock(stack: Stack) -> None:
    token = await stack.token()
    meeting_id = next(iter(stack.sim.meetings))
    assert (await stack.get(f"/meetings/{meeting_id}", token)).status_code == 200
    stack.clock.now += 60
    expired = await stack.get(f"/meetings/{meeting_id}", token)
    assert expired.status_code == 401 and expired.json()["code"] == 124
    unknown = await stack.get(f"/meetings/{meeting_id}", "not-a-token")
    assert unknown.json() == {"code": 124, "message": "Invalid access token."}
    fresh = await stack.token()
    assert (await stack.get(f"/meetings/{meeting_id}", fresh)).status_code == 200


@pytest.mark.parametrize("stack", [{"start_url_ttl_seconds": 100}], indirect=True)
async def test_each_get_issues_a_fresh_start_url_that_expires(stack: Stack) -> None:
    token = await stack.token()
    meeting_id = next(iter(stack.sim.meetings))
    first = (await stack.get(f"/meetings/{meeting_id}", token)).json()
    stack.clock.now += 60
    second = (await stack.get(f"/meetings/{meeting_id}", token)).json()
    assert first["id"] == meeting_id and isinstance(first["id"], int)
    assert first["start_url"] != second["start_url"]
    assert first["start_url"].startswith(f"https://zoom.us/s/{meeting_id}?zak=")
    assert {"password", "join_url", "uuid", "status", "settings"} <= set(first)

    def local(url: str) -> str:
        return url.replace("https://zoom.us", stack.root)

    assert (await stack.http.get(local(first["start_url"]))).status_code == 200
    stack.clock.now += 50  # first is 110 s old, second 50 s
    assert not stack.sim.start_url_valid(first["start_url"])
    assert stack.sim.start_url_valid(second["start_url"])
    assert (await stack.http.get(local(first["start_url"]))).status_code == 410
    assert (await stack.http.get(local(second["start_url"]))).status_code == 200
    forged = second["start_url"][:-4] + "XXXX"
    assert (await stack.http.get(local(forged))).status_code == 401
    assert stack.sim.start_url_checks == {"valid": 2, "expired": 1, "invalid": 1}


async def test_missing_meeting_is_404_code_3001(stack: Stack) -> None:
    token = await stack.token()
    meeting_id = next(iter(stack.sim.meetings))
    stack.sim.delete(meeting_id)
    response = await stack.get(f"/meetings/{meeting_id}", token)
    assert response.status_code == 404
    assert response.json() == {"code": 3001, "message": f"Meeting does not exist: {meeting_id}."}


async def test_list_pages_with_next_page_token(stack: Stack) -> None:
    token = await stack.token()
    owner = stack.sim.account.users[0]
    expected = sorted(m["id"] for m in stack.sim.meetings.values() if m["host_id"] == owner.id)
    assert len(expected) > 7
    seen: list[int] = []
    cursor = ""
    pages = 0
    while True:
        body = (
            await stack.get("/users/me/meetings", token, type="scheduled", page_size=7,
                            next_page_token=cursor)
        ).json()  # fmt: skip
        pages += 1
        assert body["page_size"] == 7 and body["total_records"] == len(expected)
        for item in body["meetings"]:
            assert set(item) == {"id", "uuid", "host_id", "topic", "type", "start_time",
                                 "duration", "timezone", "created_at", "join_url"}  # fmt: skip
        seen += [item["id"] for item in body["meetings"]]
        cursor = body["next_page_token"]
        if not cursor:
            break
    assert sorted(seen) == expected and len(seen) == len(set(seen))
    assert pages == -(-len(expected) // 7)
    by_email = await stack.get(f"/users/{owner.email}/meetings", token, page_size=500)
    assert by_email.json()["page_size"] == 300
    assert by_email.json()["total_records"] == len(expected)


async def test_upcoming_excludes_ended_and_past(stack: Stack) -> None:
    token = await stack.token()
    sim = stack.sim
    hosts = {u.id for u in sim.account.users}
    ids: set[int] = set()
    for user in sim.account.users:
        body = (await stack.get(f"/users/{user.id}/meetings", token, type="upcoming",
                                page_size=300)).json()  # fmt: skip
        ids |= {item["id"] for item in body["meetings"]}
    now = sim.wall_now()
    for meeting in sim.meetings.values():
        assert meeting["host_id"] in hosts
        live = meeting["status"] == "started"
        ends = datetime.fromisoformat(meeting["start_time"]) + timedelta(
            minutes=meeting["duration"]
        )
        if live:
            assert meeting["id"] in ids
        elif meeting["type"] == 2 and (meeting["_ended"] or ends <= now):
            assert meeting["id"] not in ids
    assert ids


async def test_unknown_user_and_bad_paging(stack: Stack) -> None:
    token = await stack.token()
    unknown = await stack.get("/users/nobody/meetings", token)
    assert unknown.status_code == 404 and unknown.json()["code"] == 1001
    bad = await stack.get("/users/me/meetings", token, next_page_token="nope")
    assert bad.status_code == 400 and bad.json()["code"] == 300


@pytest.mark.parametrize("stack", [{"per_second_limit": 3}], indirect=True)
async def test_per_second_limit_answers_retry_after_seconds(stack: Stack) -> None:
    token = await stack.token()
    meeting_id = next(iter(stack.sim.meetings))
    statuses = [(await stack.get(f"/meetings/{meeting_id}", token)).status_code for _ in range(3)]
    limited = await stack.get(f"/meetings/{meeting_id}", token)
    assert statuses == [200, 200, 200] and limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-ratelimit-type"] == "QPS"
    assert limited.json()["code"] == 429
    stack.clock.now += 1
    assert (await stack.get(f"/meetings/{meeting_id}", token)).status_code == 200


@pytest.mark.parametrize("stack", [{"daily_limit": 4}], indirect=True)
async def test_daily_limit_answers_retry_after_as_a_date(stack: Stack) -> None:
    token = await stack.token()
    meeting_id = next(iter(stack.sim.meetings))
    for _ in range(4):
        assert (await stack.get(f"/meetings/{meeting_id}", token)).status_code == 200
        stack.clock.now += 1
    limited = await stack.get(f"/meetings/{meeting_id}", token)
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-type"] == "Daily-limit"
    resume = datetime.fromisoformat(limited.headers["retry-after"].replace("Z", "+00:00"))
    wall = stack.sim.wall_now()
    assert resume == datetime.combine(wall.date() + timedelta(days=1), datetime.min.time(), UTC)
    stack.clock.now += (resume - wall).total_seconds()
    token = await stack.token()  # the old one has expired by now
    assert (await stack.get(f"/meetings/{meeting_id}", token)).status_code == 200


async def test_calls_are_counted_per_route_and_faults_inject(stack: Stack) -> None:
    token = await stack.token()
    meeting_id = next(iter(stack.sim.meetings))
    await stack.get(f"/meetings/{meeting_id}", token)
    await stack.get("/users/me/meetings", token)
    stack.sim.faults = Faults(error_rate=1.0)
    failed = await stack.get(f"/meetings/{meeting_id}", token)
    assert failed.status_code == 500
    calls = stack.sim.calls
    assert set(calls) <= set(ROUTES)
    assert calls["POST /oauth/token"] == 1
    assert calls["GET /v2/meetings/{meetingId}"] == 2
    assert calls["GET /v2/users/{userId}/meetings"] == 1
    assert stack.sim.statuses["GET /v2/meetings/{meetingId}", 500] == 1
