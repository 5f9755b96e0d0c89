"""Redis restarted without persistence: the applier outlives it (each partition's consumer group
comes back); the reconciler repairs the loss."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.store import open_store
from meetsync.worker.applier import Applier, StoreThread
from meetsync.worker.reconciler import Reconciler
from tests.faults.conftest import (
    API_TOKEN,
    applied_ids,
    events_of,
    eventually,
    mismatches,
    publish_all,
    recent_sim,
    restart,
)


def start_applier(
    redis: aioredis.Redis, db_path: Path, partitions: int
) -> tuple[Applier, asyncio.Task[None]]:
    applier = Applier(redis, StoreThread(lambda: open_store(db_path)), busy_backoff=0.05,
                      partitions=partitions)
    return applier, asyncio.create_task(applier.run(block_ms=100))


async def stop_applier(applier: Applier, task: asyncio.Task[None]) -> None:
    applier.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    applier.store.close()


@pytest.mark.parametrize("partitions", [1, 4])
async def test_events_lost_with_redis_data_are_repaired_by_the_next_reconcile(
    amnesiac_redis: RedisServer,
    db_path: Path,
    client_of: Callable[[RedisServer], aioredis.Redis],
    sim_api: Callable[[SavvyCalSim], str],
    partitions: int,
) -> None:
    sim = recent_sim(31)
    events = events_of(sim.play(80))
    fifth = len(events) // 5
    before, across, lost, after = (
        events[:fifth], events[fifth : 2 * fifth], events[2 * fifth : 4 * fifth],
        events[4 * fifth :],
    )
    redis = client_of(amnesiac_redis)

    async def applied(batch: list[Event]) -> None:
        async def check() -> bool:
            return {e.id for e in batch} <= applied_ids(db_path)

        await eventually(check)

    applier, task = start_applier(redis, db_path, partitions)
    try:
        await publish_all(redis, before, partitions)
        await applied(before)
        # Restarted under a running applier: its consumer group is gone with the data.
        restart(amnesiac_redis)
        await publish_all(redis, across, partitions)
        await applied(across)
    finally:
        await stop_applier(applier, task)

    # Acknowledged to the sender, queued, then lost before any worker read them.
    await publish_all(redis, lost, partitions)
    restart(amnesiac_redis)
    applier, task = start_applier(redis, db_path, partitions)
    try:
        await publish_all(redis, after, partitions)
        await applied(after)
    finally:
        await stop_applier(applier, task)
    assert not {e.id for e in lost} & applied_ids(db_path)
    assert mismatches(sim, db_path), "losing a fifth of the events should leave drift"

    def clock() -> datetime:  # the provider's: the reconciler and the mirror agree on "now"
        return sim.now + timedelta(seconds=1)

    store = StoreThread(lambda: open_store(db_path, clock=clock))
    async with SavvyCalClient(sim_api(sim), API_TOKEN, budget=RequestBudget(10_000)) as client:
        report = await Reconciler(client, store, clock=clock).run()
    store.close()
    assert report.outcome == "success"
    assert report.repaired == report.drifted > 0
    assert mismatches(sim, db_path) == {}
