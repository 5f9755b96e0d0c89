"""Queueing: the alternative we did not take, measured beside ours in the same run.

arq's one job per event (``enqueue_job`` one at a time, then a worker running no-op jobs with
the worker's own settings) against our one ``XADD`` per event and the Applier's batches. And
what partitioning the stream costs on one Redis: publish and drain with 4 partitions against 1.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from bench.common import Figure, Options, StageResult
from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.queue import publish
from meetsync.store import open_store
from meetsync.webhooks.receiver import GroupCommit
from meetsync.worker.applier import Applier, StoreThread

CONCURRENT = 256  # requests in flight at the receiver, sharing its pipelines


async def noop(ctx: dict[str, Any], payload: bytes) -> None:
    """What a one-job-per-event worker would start from, minus the actual apply."""


async def measure(url: str, events: list[Event]) -> dict[str, float]:
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(url))
    try:
        started = time.perf_counter()
        for event in events:
            await publish(pool, event)
        xadd = len(events) / (time.perf_counter() - started)
        started = time.perf_counter()
        for event in events:
            await pool.enqueue_job("noop", event.to_json(), _job_id=event.id)
        enqueue = len(events) / (time.perf_counter() - started)
        worker = Worker(functions=[noop], redis_pool=pool, burst=True, poll_delay=0.05,
                        queue_read_limit=500, max_jobs=20, keep_result=60,
                        handle_signals=False)
        started = time.perf_counter()
        await worker.main()
        jobs = worker.jobs_complete / (time.perf_counter() - started)
        # Not worker.close(): it calls redis-py's deprecated close() on our pool.
    finally:
        await pool.aclose()
    return {"xadd": xadd, "enqueue": enqueue, "jobs": jobs}


async def publish_and_drain(url: str, events: list[Event], db: Path, partitions: int) -> float:
    """Events/s through the receiver's publisher (``CONCURRENT`` at a time) and one Applier's
    ``drain()`` into a fresh mirror."""
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    store = StoreThread(lambda: open_store(db))
    applier = Applier(client, store, partitions=partitions)
    queue = GroupCommit(client, partitions)
    try:
        started = time.perf_counter()
        for start in range(0, len(events), CONCURRENT):
            await asyncio.gather(*(queue.publish(e) for e in events[start:start + CONCURRENT]))
        drained = await applier.drain()
        seconds = time.perf_counter() - started
    finally:
        store.close()
        await client.aclose()
    if drained.result.applied != len(events):
        raise RuntimeError(f"applied {drained.result.applied} of {len(events)} events")
    return len(events) / seconds


def run(options: Options) -> StageResult:
    from bench.stages.apply import bench_events

    result = StageResult("queueing")
    work = options.workdir / "queueing"
    events = bench_events(options)[: options.count(5000, 500)]
    with RedisServer(work / "redis") as server:
        rates = asyncio.run(measure(server.url, events))
        split = asyncio.run(publish_and_drain(server.url, events, work / "p4.db", 4))
        single = asyncio.run(publish_and_drain(server.url, events, work / "p1.db", 1))
    enqueue = Figure("queue: one at a time", "enqueues/s", rates["enqueue"], rates["xadd"])
    enqueue.note = ("arq enqueue_job (ours column) vs our publish() = one XADD (baseline "
                    f"column), {len(events)} events each, awaited one at a time")
    jobs = Figure("queue: arq worker ceiling", "jobs/s", rates["jobs"])
    jobs.note = ("arq Worker(burst, poll_delay=0.05, queue_read_limit=500, max_jobs=20) "
                 "running no-op jobs; compare with the apply stage's events/s, which include "
                 "the SQLite work")
    partitioned = Figure("queue: 4 partitions vs 1", "events/s", split, single)
    partitioned.note = (f"{len(events)} events published {CONCURRENT} at a time through the "
                        "receiver's GroupCommit, then Applier.drain() into SQLite; one Redis")
    result.figures += [enqueue, jobs, partitioned]
    result.commands.append("in-process: redis-py/arq against a private redis-server (AOF "
                           "everysec), one awaited call per event")
    return result
