"""A worker SIGKILLed mid-batch loses nothing: another claims its entries (on every partition
of a partitioned queue); the mirror ends right."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetsync.dev.redis_server import RedisServer
from meetsync.queue import backlog
from meetsync.store import open_store
from tests.faults.conftest import (
    API_TOKEN,
    NATIVE_SECRET,
    READ_TOKEN,
    Processes,
    applied_ids,
    events_of,
    eventually,
    mismatches,
    publish_all,
    queue_settled,
    recent_sim,
    stack_env,
)
from tests.helpers.savvycal import savvycal_settings
from tests.sql import writes_held


@pytest.mark.parametrize("partitions", [1, 4])
async def test_entries_of_a_killed_worker_are_claimed_and_the_mirror_converges(
    own_redis: RedisServer, db_path: Path, processes: Processes, client_of: object,
    partitions: int,
) -> None:
    sim = recent_sim(21)
    events = events_of(sim.play(400))
    half = len(events) // 2
    open_store(db_path).close()  # migrated up front: the lock below must not stall start-up
    settings = savvycal_settings(db_path=str(db_path), redis_url=own_redis.url,
                        savvycal_webhook_secrets=(NATIVE_SECRET,),
                        savvycal_api_token=API_TOKEN, read_token=READ_TOKEN,
                        savvycal_api_url="http://127.0.0.1:9/v1")
    env = stack_env(settings, MEETSYNC_CLAIM_IDLE_MS="300",
                    MEETSYNC_QUEUE_PARTITIONS=str(partitions))
    redis = client_of(own_redis)  # type: ignore[operator]

    first = processes.spawn("worker", env, "worker-1")

    async def worker_up() -> bool:
        return "applier_started" in processes.log("worker-1")

    await eventually(worker_up)
    await publish_all(redis, events[:half], partitions)

    async def some_applied() -> bool:
        return bool(applied_ids(db_path))

    await eventually(some_applied)

    async def batch_in_flight() -> bool:
        return (await backlog(redis, partitions)).pending > 0

    # Another writer holds the database: the worker reads a batch and cannot commit it.
    with writes_held(db_path):
        await publish_all(redis, events[half:], partitions)
        await eventually(batch_in_flight)
        processes.kill(first)
    in_flight = (await backlog(redis, partitions)).pending
    assert in_flight > 0
    assert len(applied_ids(db_path)) < len({e.id for e in events})

    processes.spawn("worker", env, "worker-2")

    async def settled() -> bool:
        return await queue_settled(redis, partitions)

    await eventually(settled, patience=30)
    assert applied_ids(db_path) == {e.id for e in events}
    assert mismatches(sim, db_path) == {}
    assert "applier_round_failed" not in processes.log("worker-2")
