"""A Zoom meeting deleted reads as deleted, serves nothing live, and keeps its last known
schedule: whether ``meeting.deleted`` says so (with or without times, with or without
``event_ts``) or the API answers 404 on a refetch, in whatever order the deliveries arrive.

Real HTTP both ways: signed deliveries POSTed to the app (served by uvicorn, its own Redis
client), the read API asked over HTTP, the Zoom simulator as the provider's API. Real Redis
(the session's server), the applier draining the event stream, the worker's refetch job for
hints; the mirror on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.constants import default_queue_name, job_key_prefix
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from meetsync.dev.redis_server import RedisServer
from meetsync.providers.keys import settings_from_env
from meetsync.providers.zoom.simulator import ZoomDelivery, ZoomSim
from meetsync.providers.zoom.simulator.signing import zoom_headers
from meetsync.simulator import serve_in_background
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, StoreThread
from meetsync.worker.main import WorkerContext, connect, refetch_appointment

TOKEN = "zoom-deletion-read-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
DELETIONS = ("dated", "dated_no_times", "undated", "undated_no_times")


def env(sim: ZoomSim, root: str, db: Path | str, redis_url: str) -> dict[str, str]:
    account = sim.account
    return {
        "MEETSYNC_DB": str(db), "REDIS_URL": redis_url, "MEETSYNC_READ_TOKEN": TOKEN,
        "ZOOM_API_URL": f"{root}/v2", "ZOOM_OAUTH_URL": f"{root}/oauth/token",
        "ZOOM_ACCOUNT_ID": account.account_id, "ZOOM_CLIENT_ID": account.client_id,
        "ZOOM_CLIENT_SECRET": account.client_secret,
        "ZOOM_WEBHOOK_SECRET_TOKEN": account.secret_token,
        "ZOOM_API_REQUESTS_PER_SECOND": "1000",
    }


def body_of(delivery: ZoomDelivery, deletion: str = "dated") -> bytes:
    """The delivery's body; a deletion reshaped: without ``event_ts`` (``undated``) and/or
    without its ``start_time``/``duration`` (``no_times``), both optional in Zoom's types."""
    envelope = delivery.envelope()
    if deletion.startswith("undated"):
        del envelope["event_ts"]
    if deletion.endswith("no_times"):
        for name in ("start_time", "duration", "timezone"):
            envelope["payload"]["object"].pop(name, None)
    return orjson.dumps(envelope)


@dataclass
class Stack:
    sim: ZoomSim
    http: httpx.AsyncClient
    applier: Applier
    arq: ArqRedis
    ctx: dict[str, Any]

    async def deliver(self, body: bytes) -> int:
        """POST one signed delivery, then apply what it queued: the event, or the refetch."""
        headers = zoom_headers(body, self.sim.account.secret_token)
        response = await self.http.post("/webhooks/zoom", content=body, headers=headers)
        await self.settle()
        return response.status_code

    async def settle(self) -> None:
        await self.applier.drain()
        for job in await self.arq.queued_jobs():  # refetches a hint asked for, as arq would
            assert job.job_id is not None
            ctx = {**self.ctx, "job_id": job.job_id, "job_try": 1}
            assert await refetch_appointment(ctx, *job.args) in ("applied", "unknown")
            await self.arq.delete(job_key_prefix + job.job_id)
            await self.arq.zrem(default_queue_name, job.job_id)

    async def refetch(self, meeting_id: str) -> str:
        """The worker's refetch of one meeting, as the reconciler or a hint would queue it."""
        ctx = {**self.ctx, "job_id": f"refetch:zoom:default:{meeting_id}", "job_try": 1}
        return str(await refetch_appointment(ctx, "zoom", "default", meeting_id))

    async def read(self, meeting_id: str) -> dict[str, Any]:
        """What a reader sees: the appointment (with its current meeting) and the meeting."""
        appointment = await self.http.get(f"/v1/zoom/appointments/{meeting_id}", headers=AUTH)
        meeting = await self.http.get(f"/v1/zoom/meetings/{meeting_id}", headers=AUTH)
        current = await self.http.get(f"/v1/zoom/appointments/{meeting_id}/meeting",
                                      headers=AUTH)
        assert appointment.status_code == meeting.status_code == 200, meeting.text
        found, served = appointment.json(), meeting.json()
        shown = ("id", "status", "join_url", "password")  # not host_url: each fetch has its own
        return {
            "appointment": {k: found[k] for k in ("status", "start_at", "end_at", "meeting_id")},
            "current_meeting": found["meeting"] and {k: found["meeting"][k] for k in shown},
            "meeting_route": current.status_code,
            "meeting": {k: served[k] for k in shown},
            "host_url_served": served["host_url"] is not None,
        }


@asynccontextmanager
async def zoom_stack(
    redis_server: RedisServer, db: Path | str, sim: ZoomSim
) -> AsyncIterator[Stack]:
    redis = aioredis.Redis.from_url(redis_server.url)
    await redis.flushdb()
    arq = ArqRedis.from_url(redis_server.url)
    with serve_in_background(sim.asgi_app(per_second_limit=10_000)) as sim_root:
        settings = settings_from_env(env(sim, sim_root, db, redis_server.url))
        store = StoreThread(lambda: open_store(settings.db_path))
        connections = connect(settings)
        state = WorkerContext(settings, arq, store, applier=None,  # type: ignore[arg-type]
                              applier_task=None,  # type: ignore[arg-type]
                              connections=connections)
        try:
            with serve_in_background(create_app(settings), lifespan="on") as root:
                async with httpx.AsyncClient(base_url=root, timeout=10) as http:
                    yield Stack(sim, http, Applier(redis, store), arq, {"meetsync": state})
        finally:
            for connection in connections.values():
                await connection.api.aclose()
            store.close()
            await arq.aclose()
            await redis.aclose()


def new_sim(seed: int = 7) -> tuple[ZoomSim, datetime]:
    """A sim whose history lies in the past (receipt is later than every ``event_ts``) and
    whose meetings lie ahead."""
    now = datetime.now(UTC).replace(microsecond=0)
    return ZoomSim(seed, start=now - timedelta(hours=2)), now


def scheduled(delivery: ZoomDelivery) -> tuple[str, str]:
    obj = delivery.envelope()["payload"]["object"]
    start = datetime.fromisoformat(obj["start_time"].replace("Z", "+00:00"))
    end = start + timedelta(minutes=obj["duration"])
    return tuple(t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, end))  # type: ignore[return-value]


def deleted_view(meeting_id: str, times: tuple[str, str]) -> dict[str, Any]:
    return {
        "appointment": {"status": "deleted", "start_at": times[0], "end_at": times[1],
                        "meeting_id": None},
        "current_meeting": None,
        "meeting_route": 404,
        "meeting": {"id": meeting_id, "status": "canceled", "join_url": None, "password": None},
        "host_url_served": False,
    }


@pytest.mark.parametrize("deletion", DELETIONS)
async def test_created_then_deleted_reads_deleted_and_keeps_its_schedule(
    redis_server: RedisServer, db_path: Path | str, deletion: str
) -> None:
    sim, now = new_sim()
    created = sim.create(start_time=now + timedelta(days=1), duration=45)
    meeting_id = str(created.meeting_id)
    async with zoom_stack(redis_server, db_path, sim) as stack:
        assert await stack.deliver(created.body) == 202
        before = await stack.read(meeting_id)
        assert before["meeting"]["status"] == "created"
        assert before["meeting"]["join_url"] is not None
        deleted = sim.delete(int(meeting_id))
        assert await stack.deliver(body_of(deleted, deletion)) == 202
        assert await stack.read(meeting_id) == deleted_view(meeting_id, scheduled(created))


async def test_a_404_on_refetch_lands_in_the_same_deleted_state(
    redis_server: RedisServer, db_path: Path | str
) -> None:
    sim, now = new_sim()
    created = sim.create(start_time=now + timedelta(days=1), duration=30)
    meeting_id = str(created.meeting_id)
    async with zoom_stack(redis_server, db_path, sim) as stack:
        assert await stack.deliver(created.body) == 202
        sim.delete(int(meeting_id))  # its webhook is lost: only the API says so
        assert await stack.refetch(meeting_id) == "applied"
        assert await stack.read(meeting_id) == deleted_view(meeting_id, scheduled(created))


async def test_deleted_before_an_older_update_still_ends_deleted(
    redis_server: RedisServer, db_path: Path | str
) -> None:
    sim, now = new_sim()
    created = sim.create(start_time=now + timedelta(days=1), duration=30)
    meeting_id = str(created.meeting_id)
    updated = sim.update(int(meeting_id), start_time=now + timedelta(days=2), password="n3wpass")
    deleted = sim.delete(int(meeting_id))
    async with zoom_stack(redis_server, db_path, sim) as stack:
        for body in (created.body, body_of(deleted, "dated_no_times"), updated.body):
            assert await stack.deliver(body) == 202
        assert await stack.read(meeting_id) == deleted_view(meeting_id, scheduled(created))


async def test_only_meeting_deleted_may_come_without_event_ts(
    redis_server: RedisServer, db_path: Path | str
) -> None:
    sim, now = new_sim()
    created = sim.create(start_time=now + timedelta(days=1))
    async with zoom_stack(redis_server, db_path, sim) as stack:
        assert await stack.deliver(body_of(created, "undated")) == 400  # required there
        assert await stack.deliver(created.body) == 202
        deleted = body_of(sim.delete(int(str(created.meeting_id))), "undated")
        assert await stack.deliver(deleted) == 202
        assert await stack.deliver(deleted) == 202  # Zoom's retry of the same body: a duplicate
        round_ = await stack.applier.drain()
        assert round_.read == 0
        view = await stack.read(str(created.meeting_id))
        assert view["appointment"]["status"] == "deleted"


# --- any order ------------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, int, str | None, list[int]]:
    """A meeting's life (its sim's seed, how many updates, how it is deleted if it is) and an
    arrival order of its deliveries."""
    updates = draw(st.integers(0, 2))
    deletion = draw(st.sampled_from((None, *DELETIONS)))
    count = 1 + updates + (deletion is not None)
    return (draw(st.integers(0, 50)), updates, deletion,
            draw(st.permutations(range(count))))


@hypothesis_settings(max_examples=8, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(history=histories())
def test_property_any_order_of_a_meetings_events_ends_as_in_order(
    redis_server: RedisServer, new_mirror: Callable[[], Path | str],
    history: tuple[int, int, str | None, list[int]],
) -> None:
    seed, updates, deletion, order = history

    async def scenario() -> None:
        sim, now = new_sim(seed)
        created = sim.create(start_time=now + timedelta(days=1), duration=30)
        meeting_id = int(str(created.meeting_id))
        deliveries = [created.body]
        for n in range(updates):
            deliveries.append(sim.update(meeting_id, start_time=now + timedelta(days=2 + n),
                                         password=f"pass{n}").body)
        if deletion is not None:
            deliveries.append(body_of(sim.delete(meeting_id), deletion))
        seen = []
        for arrival in (list(range(len(deliveries))), order):
            async with zoom_stack(redis_server, new_mirror(), sim) as stack:
                for index in arrival:
                    assert await stack.deliver(deliveries[index]) == 202
                seen.append(await stack.read(str(meeting_id)))
        assert seen[1] == seen[0]
        if deletion is not None:
            times = (scheduled(created) if deletion.endswith("no_times")
                     else (iso(now + timedelta(days=1 + updates)),
                           iso(now + timedelta(days=1 + updates, minutes=30))))
            assert seen[0] == deleted_view(str(meeting_id), times)

    asyncio.run(scenario())


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
