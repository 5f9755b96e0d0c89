"""Zoom's promise, end to end: a host_url meetsync serves for a Zoom meeting is valid right now,
or it is not served.

Real Redis (the session's server), real SQLite, the Zoom simulator over real HTTP as the
provider, our read API over ``httpx.ASGITransport``. Time is one ``ManualClock`` shared by the
simulator (start URL expiry), the store (what reads may serve), and the worker (refetch stamps,
the refresh cron), except in the arq worker test, which runs on the wall clock.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.worker import create_worker
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.applications import Starlette

import meetsync.worker.main as worker_main
from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event, from_micros, iso_utc
from meetsync.providers import Hint
from meetsync.providers.keys import settings_from_env
from meetsync.providers.zoom import PROVIDER
from meetsync.providers.zoom.simulator import ZoomDelivery, ZoomSim
from meetsync.queue import LaneKeys, request_refetch
from meetsync.settings import Settings
from meetsync.simulator import serve_in_background
from meetsync.simulator.clock import ManualClock
from meetsync.store import Store, open_store
from meetsync.webhooks.read_api import ReadOnlyMirror, read_routes
from meetsync.worker.applier import StoreThread
from meetsync.worker.main import (
    WorkerContext,
    connect,
    drain_lanes,
    refresh_credentials,
    worker_settings,
)

TOKEN = "read-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
TTL = 7200
MARGIN = 900
WINDOW = 86_400


def zoom_env(sim: ZoomSim, root: str, db: Path, redis_url: str, **extra: str) -> dict[str, str]:
    account = sim.account
    return {
        "MEETSYNC_DB": str(db),
        "REDIS_URL": redis_url,
        "MEETSYNC_READ_TOKEN": TOKEN,
        "ZOOM_API_URL": f"{root}/v2",
        "ZOOM_OAUTH_URL": f"{root}/oauth/token",
        "ZOOM_ACCOUNT_ID": account.account_id,
        "ZOOM_CLIENT_ID": account.client_id,
        "ZOOM_CLIENT_SECRET": account.client_secret,
        "ZOOM_WEBHOOK_SECRET_TOKEN": account.secret_token,
        "ZOOM_API_REQUESTS_PER_SECOND": "1000",
        **extra,
    }


@dataclass
class Stack:
    """The simulator, a hand-built worker context and the read API, on one manual clock."""

    sim: ZoomSim
    clock: ManualClock
    t0: datetime
    settings: Settings
    ctx: dict[str, Any]
    arq: ArqRedis
    http: httpx.AsyncClient
    asked: list[str] = field(default_factory=list)  # appointment ids, in the order queued

    def wall(self) -> datetime:
        return self.t0 + timedelta(seconds=self.clock.now)

    @property
    def state(self) -> WorkerContext:
        return WorkerContext.of(self.ctx)

    async def apply(self, deliveries: list[ZoomDelivery]) -> None:
        """Each delivery verified and parsed by the Zoom package, then applied (a hint: a
        refetch, as the receiver would queue)."""
        hooks = PROVIDER.webhooks(self.settings.accounts_of("zoom"))
        for delivery in deliveries:
            headers = delivery.headers(self.sim.account.secret_token)
            account = hooks.verify(delivery.body, headers)
            found = hooks.parse(delivery.body, account)
            if isinstance(found, Hint):
                await request_refetch(self.arq, "zoom", account, found.appointment_id)
            else:
                assert isinstance(found, Event)
                await self.state.store.run(partial(Store.apply, events=[found]))

    async def refresh(self) -> list[str]:
        """One run of the refresh cron at the clock's now: the appointments it queued."""
        self.asked.clear()
        await refresh_credentials(self.ctx, now=self.state.clock())  # simulated time: no claim
        return list(self.asked)

    async def run_jobs(self) -> list[str]:
        """Fetch every waiting refetch once, as the worker's lanes would, and clear it."""
        ran = []
        for _, appointment_id, outcome in await drain_lanes(self.state):
            assert outcome == "applied"
            ran.append(appointment_id)
        return ran

    async def advance(self, seconds: float) -> None:
        await self.clock.advance_to(self.clock.now + seconds)

    async def read(self, appointment_id: str, **params: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/zoom/appointments/{appointment_id}/meeting",
                                       headers=AUTH, params=params)
        assert response.status_code == 200, response.text
        served: dict[str, Any] = response.json()
        host_url = served["host_url"]
        # the promise: whatever is served starts the meeting right now
        assert host_url is None or self.sim.start_url_valid(host_url), (appointment_id, served)
        assert served["host_url_refresh_pending"] is (host_url is None)
        return served


@asynccontextmanager
async def zoom_stack(
    redis_url: str, tmp: Path, *, ttl: int = TTL, margin: int = MARGIN, seed: int = 4,
) -> AsyncIterator[Stack]:
    clock = ManualClock()
    t0 = datetime.now(UTC).replace(microsecond=0)
    # Webhooks are older than every refetch: the sim's history starts an hour back.
    sim = ZoomSim(seed, start=t0 - timedelta(hours=1), clock=clock)

    def wall() -> datetime:
        return t0 + timedelta(seconds=clock.now)

    app = sim.asgi_app(start_url_ttl_seconds=ttl, per_second_limit=10_000)
    arq = ArqRedis.from_url(redis_url)
    await arq.flushdb()
    with serve_in_background(app) as root:
        settings = settings_from_env(zoom_env(
            sim, root, tmp / "mirror.db", redis_url, ZOOM_START_URL_TTL_SECONDS=str(ttl),
            MEETSYNC_REFRESH_MARGIN_SECONDS=str(margin), MEETSYNC_REFRESH_WAIT_SECONDS="0"))
        store = StoreThread(lambda: open_store(settings.db_path, clock=wall))
        connections = connect(settings)
        state = WorkerContext(settings, arq, store, applier=None,  # type: ignore[arg-type]
                              applier_task=None,  # type: ignore[arg-type]
                              connections=connections, clock=wall)
        mirror = ReadOnlyMirror(settings.db_path, clock=wall)
        transport = httpx.ASGITransport(app=Starlette(routes=read_routes(settings, mirror, arq)))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                stack = Stack(sim, clock, t0, settings, {"meetsync": state}, arq, http)
                real = request_refetch

                async def spy(redis: Any, provider: str, account: str, key: str,
                              **options: Any) -> bool:
                    stack.asked.append(key)  # the order the refresh cron asks in
                    return await real(redis, provider, account, key, **options)

                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(worker_main, "request_refetch", spy)
                    yield stack
        finally:
            mirror.close()
            for connection in connections.values():
                await connection.api.aclose()
            store.close()
            await arq.aclose()


def key(delivery: ZoomDelivery) -> str:
    assert delivery.meeting_id is not None
    return str(delivery.meeting_id)


async def test_refresh_queues_upcoming_meetings_soonest_first_and_again_before_they_die(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with zoom_stack(redis_server.url, tmp_path) as stack:
        sim, t0 = stack.sim, stack.t0
        at = {name: t0 + timedelta(hours=hours) for name, hours in
              (("a", 3), ("b", 2), ("c", 5), ("d", 20), ("outside", 40), ("gone", 2.5))}
        made = {name: sim.create(start_time=moment, duration=30) for name, moment in at.items()}
        live = sim.create(start_time=t0 - timedelta(hours=1), duration=240)
        over = sim.create(start_time=t0 - timedelta(hours=1), duration=30)
        deliveries = [*made.values(), live, over, sim.delete(int(key(made["gone"]))),
                      sim.start(int(key(live))), sim.start(int(key(over))),
                      sim.end(int(key(over)))]
        await stack.apply(deliveries)
        ids = {name: key(d) for name, d in made.items()}
        upcoming = [key(live), ids["b"], ids["a"], ids["c"], ids["d"]]  # soonest first

        assert await stack.refresh() == upcoming
        assert sorted(await stack.run_jobs()) == sorted(upcoming)
        assert stack.sim.calls["GET /v2/meetings/{meetingId}"] == len(upcoming)
        for appointment_id in upcoming:
            served = await stack.read(appointment_id)
            assert served["host_url"] is not None
            expiry = from_micros(served["source_version_us"]) + timedelta(seconds=TTL)
            assert served["host_url_expires_at"] == iso_utc(expiry) == iso_utc(
                t0 + timedelta(seconds=TTL))
        assert (await stack.read(ids["outside"]))["host_url"] is None
        gone = await stack.http.get(f"/v1/zoom/appointments/{ids['gone']}/meeting", headers=AUTH)
        assert gone.status_code == 404  # deleted: its meeting detached
        assert (await stack.read(key(over)))["host_url"] is None

        assert await stack.refresh() == []  # all fresh: nothing to do
        assert await stack.arq.queued_jobs() == []
        assert await stack.arq.zcard(LaneKeys.of("zoom", "default").waiting) == 0
        await stack.advance(TTL - MARGIN)  # dies exactly at now + margin: not yet
        assert await stack.refresh() == []
        await stack.advance(1)
        assert await stack.refresh() == upcoming
        assert sorted(await stack.run_jobs()) == sorted(upcoming)
        renewed = iso_utc(stack.wall() + timedelta(seconds=TTL))
        for appointment_id in upcoming:  # a second refetch of each is applied, not a duplicate
            served = await stack.read(appointment_id)
            assert served["host_url"] is not None and served["host_url_expires_at"] == renewed
        # a token expired meanwhile (the sim's live an hour): the client fetched a new one
        assert stack.sim.calls["POST /oauth/token"] == 2


async def test_the_read_api_never_serves_an_expired_start_url(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ttl = 60
    async with zoom_stack(redis_server.url, tmp_path, ttl=ttl) as stack:
        deliveries = [stack.sim.create(start_time=stack.t0 + timedelta(hours=h)) for h in (1, 2)]
        await stack.apply(deliveries)
        ids = [key(d) for d in deliveries]
        await stack.refresh()
        await stack.run_jobs()
        for step in (0, 30, 29):  # to 59 s: still alive, served, valid
            await stack.advance(step)
            for appointment_id in ids:
                assert (await stack.read(appointment_id))["host_url"] is not None
        await stack.advance(1)  # 60 s: dead on both sides
        for appointment_id in ids:
            served = await stack.read(appointment_id)
            assert served["host_url"] is None and served["host_url_refresh_pending"] is True
            assert served["host_url_expires_at"] == iso_utc(stack.t0 + timedelta(seconds=ttl))
            response = await stack.http.get(f"/v1/zoom/meetings/{appointment_id}", headers=AUTH)
            assert response.json()["host_url"] is None
        await stack.advance(3600)
        for appointment_id in ids:
            assert (await stack.read(appointment_id))["host_url"] is None
        # the next refresh cycle brings them back, fresh
        assert sorted(await stack.refresh()) == sorted(ids)
        await stack.run_jobs()
        for appointment_id in ids:
            assert (await stack.read(appointment_id))["host_url"] is not None


async def test_fresh_true_waits_for_a_real_arq_worker_and_is_bounded_without_one(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sim = ZoomSim(9, start=now - timedelta(hours=1))  # the wall clock throughout
    first = sim.create(start_time=now + timedelta(hours=2))
    second = sim.create(start_time=now + timedelta(hours=3))
    wait = 2
    with serve_in_background(sim.asgi_app()) as root:
        # A window of a minute: the refresh cron (run at startup) leaves both meetings alone,
        # so only ?fresh=true can get them a start URL.
        settings = settings_from_env(zoom_env(
            sim, root, tmp_path / "mirror.db", redis_server.url,
            MEETSYNC_REFRESH_WINDOW_SECONDS="60", MEETSYNC_REFRESH_WAIT_SECONDS=str(wait)))
        hooks = PROVIDER.webhooks(settings.accounts_of("zoom"))
        with open_store(settings.db_path) as store:
            for delivery in (first, second):
                account = hooks.verify(delivery.body, delivery.headers(sim.account.secret_token))
                event = hooks.parse(delivery.body, account)
                assert isinstance(event, Event)
                store.apply([event])
        mirror = ReadOnlyMirror(settings.db_path)
        transport = httpx.ASGITransport(app=Starlette(routes=read_routes(settings, mirror, redis)))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

            async def read(appointment_id: str, **params: str) -> tuple[dict[str, Any], float]:
                started = time.monotonic()
                response = await http.get(f"/v1/zoom/appointments/{appointment_id}/meeting",
                                          headers=AUTH, params=params)
                assert response.status_code == 200
                return response.json(), time.monotonic() - started

            worker = create_worker(worker_settings(settings), handle_signals=False)
            task = asyncio.create_task(worker.async_run())
            try:
                for _ in range(200):  # started: the startup refresh ran and queued nothing
                    if "meetsync" in worker.ctx:
                        break
                    await asyncio.sleep(0.02)
                served, _ = await read(key(first))
                assert served["host_url"] is None and served["host_url_refresh_pending"]
                served, took = await read(key(first), fresh="true")
                assert served["host_url"] is not None and sim.start_url_valid(served["host_url"])
                assert served["host_url_refresh_pending"] is False
                assert took < wait
                assert sim.calls["GET /v2/meetings/{meetingId}"] == 1
            finally:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
                with warnings.catch_warnings():  # arq closes its pool with redis-py's close()
                    warnings.simplefilter("ignore", DeprecationWarning)
                    await worker.close()

            # No worker: the read queues a refetch, waits its bound and answers pending.
            served, took = await read(key(second), fresh="true")
            assert served["host_url"] is None and served["host_url_refresh_pending"] is True
            assert wait - 0.2 <= took < wait + 1.5
            assert await redis.zscore(LaneKeys.of("zoom", "default").waiting, key(second))
            assert sim.calls["GET /v2/meetings/{meetingId}"] == 1
        mirror.close()


Step = tuple[str, int]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(min_value=0, max_value=1500)),
        st.tuples(st.just("refresh"), st.just(0)),
    ),
    min_size=1, max_size=12,
)


@hypothesis_settings(max_examples=6, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, seed=st.integers(min_value=0, max_value=1000))
def test_property_a_served_start_url_is_always_valid(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, steps: list[Step],
    seed: int,
) -> None:
    """Random (advance the clock, run a refresh cycle) sequences with reads after each step:
    whatever is served is valid; right after a refresh cycle every upcoming meeting in the
    window is served one."""
    ttl, margin = 600, 120

    async def scenario() -> None:
        tmp = tmp_path_factory.mktemp("fresh")
        async with zoom_stack(redis_server.url, tmp, ttl=ttl, margin=margin, seed=seed) as stack:
            hours = (0.5, 1, 3, 8, 30)
            deliveries = [stack.sim.create(start_time=stack.t0 + timedelta(hours=h), duration=60)
                          for h in hours]
            await stack.apply(deliveries)
            ids = [key(d) for d in deliveries]
            for action, seconds in steps:
                if action == "advance":
                    await stack.advance(seconds)
                else:
                    await stack.refresh()
                    await stack.run_jobs()
                for appointment_id, h in zip(ids, hours, strict=True):
                    served = await stack.read(appointment_id)
                    start = stack.t0 + timedelta(hours=h)
                    upcoming = stack.wall() < start + timedelta(hours=1) and (
                        start < stack.wall() + timedelta(seconds=WINDOW))
                    if action == "refresh" and upcoming:
                        assert served["host_url"] is not None

    asyncio.run(scenario())
