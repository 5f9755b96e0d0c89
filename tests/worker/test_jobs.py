"""The worker's arq jobs against a real Redis, SQLite and the simulator's HTTP API: the reconcile
cron repairs and counts only its own API calls; a tie makes the applier enqueue a refetch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from structlog.testing import capture_logs

from meetsync.dev.redis_server import RedisServer
from meetsync.errors import StoreUnavailable
from meetsync.events import Event, Meeting
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.queue import LaneKeys, publish
from meetsync.simulator import serve_in_background
from meetsync.store import open_store
from meetsync.worker.main import (
    WorkerContext,
    claim,
    outage_waits,
    prune_inbox,
    purge_credentials,
    reconcile,
    refetch_appointment,
    refresh_credentials,
    shutdown,
    startup,
)
from tests.helpers.savvycal import savvycal_settings


async def test_reconcile_cron_repairs_an_empty_mirror_and_counts_its_own_calls(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    sim = SavvyCalSim(7, start=start, token="tok")
    sim.play(150)
    with serve_in_background(sim.asgi_app()) as root:
        settings = savvycal_settings(db_path=str(tmp_path / "m.db"), redis_url=redis_server.url,
                            savvycal_api_url=f"{root}/v1", savvycal_api_token="tok")
        arq = ArqRedis.from_url(redis_server.url)
        ctx: dict[str, Any] = {"settings": settings, "redis": arq}
        await startup(ctx)
        try:
            state = WorkerContext.of(ctx)
            # a refetch on the shared client first: the reconcile run must not count it
            held_id = next(iter(sim.appointments))
            ctx.update(job_id="refetch:x", job_try=1)
            assert await refetch_appointment(ctx, held_id) == "applied"
            assert state.connections[("savvycal", "default")].api.calls == 1

            summary = (await reconcile(ctx))["savvycal/default"]
            # The cron fires every interval in every worker; an account swept within it (by
            # this worker or another on the same Redis) is not swept again.
            assert await reconcile(ctx) == {}
            other: dict[str, Any] = {"settings": settings, "redis": arq}
            await startup(other)
            try:
                assert await reconcile(other) == {}
            finally:
                await shutdown(other)
        finally:
            await shutdown(ctx)
            await arq.aclose()
    assert summary["outcome"] == "success"
    assert summary["api_calls"] == summary["pages"] > 0
    with open_store(tmp_path / "m.db", readonly=True) as store:
        held_by_id = store.snapshots(list(sim.appointments))
    for appointment_id, appointment in sim.appointments.items():
        if appointment["meeting"] is None:
            continue
        held = held_by_id.get(appointment_id)
        ended = datetime.fromisoformat(appointment["end_at"]["utc"].replace("Z", "+00:00"))
        if ended > datetime.now(UTC) - timedelta(hours=24):
            assert held is not None and held["meeting_id"] == appointment["meeting"]["id"]


async def test_a_tie_makes_the_worker_enqueue_a_refetch_of_that_appointment(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    settings = savvycal_settings(db_path=str(tmp_path / "m.db"), redis_url=redis_server.url,
                        savvycal_api_url="http://127.0.0.1:9/v1", savvycal_api_token="tok")
    arq = ArqRedis.from_url(redis_server.url)
    ctx: dict[str, Any] = {"settings": settings, "redis": arq}
    await startup(ctx)
    try:
        for eid, status in (("evt_a", "created"), ("evt_b", "failed")):
            await publish(redis, Event(
                id=eid, provider="savvycal", type="appointment.meeting.updated", occurred_at=5,
                appointment_id="appt_tied", meeting=Meeting(id="amtg_1", status=status)))
        # Fetched by the account's lane (its API is unreachable here: back in line, retried).
        lane = LaneKeys.of("savvycal", "default")
        for _ in range(200):
            if (await redis.zscore(lane.waiting, "appt_tied") is not None
                    or await redis.zscore(lane.in_flight, "appt_tied") is not None):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the tie queued no refetch")
        assert await arq.queued_jobs() == []  # not an arq job: no slot held
    finally:
        await shutdown(ctx)
        await arq.aclose()


async def test_a_tie_without_an_api_token_is_logged_with_its_appointments_and_the_fix(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    settings = savvycal_settings(db_path=str(tmp_path / "m.db"), redis_url=redis_server.url)
    arq = ArqRedis.from_url(redis_server.url)
    ctx: dict[str, Any] = {"settings": settings, "redis": arq}
    with capture_logs() as logs:
        await startup(ctx)
        try:
            for eid, status in (("evt_a", "created"), ("evt_b", "failed")):
                await publish(redis, Event(
                    id=eid, provider="savvycal", type="appointment.meeting.updated",
                    occurred_at=5, appointment_id="appt_tied",
                    meeting=Meeting(id="amtg_1", status=status)))
            for _ in range(200):
                if any(line["event"] == "tie_unresolved" for line in logs):
                    break
                await asyncio.sleep(0.02)
        finally:
            await shutdown(ctx)
            await arq.aclose()
    (line,) = [line for line in logs if line["event"] == "tie_unresolved"]
    assert line["appointments"] == ["appt_tied"] and "SAVVYCAL_API_TOKEN" in line["fix"]


async def test_a_periodic_task_is_claimed_by_one_worker_per_interval(
    redis_server: RedisServer,
) -> None:
    arq = ArqRedis.from_url(redis_server.url)
    try:
        assert await claim(arq, "task", 0.3) is True
        assert await claim(arq, "task", 0.3) is False  # any worker, within the interval
        assert await claim(arq, "other", 0.3) is True
        await asyncio.sleep(0.35)
        assert await claim(arq, "task", 0.3) is True
    finally:
        await arq.aclose()


async def test_a_periodic_job_meeting_the_mirror_unavailable_logs_a_warning_not_a_traceback(
) -> None:
    """The crons ride out an outage (PostgreSQL restarting, SQLite locked past its timeout):
    a warning naming the job, and its next run does the work; any other error is still raised
    (a bug shows its traceback)."""
    @outage_waits
    async def down(ctx: dict[str, object]) -> int:
        raise StoreUnavailable("terminating connection due to administrator command\nDETAIL")

    @outage_waits
    async def broken(ctx: dict[str, object]) -> int:
        raise KeyError("a bug")

    with capture_logs() as logs:
        assert await down({}) is None
    assert logs == [{"event": "periodic_job_skipped", "log_level": "warning", "job": "down",
                     "error": "terminating connection due to administrator command",
                     "retry": "at its next run"}]
    with pytest.raises(KeyError):
        await broken({})
    assert all(hasattr(job, "__wrapped__") for job in (prune_inbox, purge_credentials,
                                                         refresh_credentials))
