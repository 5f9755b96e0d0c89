"""Queueing: the alternative we did not take, measured beside ours in the same run.

arq's one job per event (``enqueue_job`` one at a time, then a worker running no-op jobs with
the worker's own settings) against our one ``XADD`` per event and the Applier's batches.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from bench.common import Figure, Options, StageResult
from meetsync.events import Event
from meetsync.redis_server import RedisServer
from meetsync.worker.queue import publish


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


def run(options: Options) -> StageResult:
    from bench.stages.apply import bench_events

    result = StageResult("queueing")
    work = options.workdir / "queueing"
    events = bench_events(options)[: options.count(5000, 500)]
    with RedisServer(work / "redis") as server:
        rates = asyncio.run(measure(server.url, events))
    enqueue = Figure("queue: one at a time", "enqueues/s", rates["enqueue"], rates["xadd"])
    enqueue.note = ("arq enqueue_job (ours column) vs our publish() = one XADD (baseline "
                    f"column), {len(events)} events each, awaited one at a time")
    jobs = Figure("queue: arq worker ceiling", "jobs/s", rates["jobs"])
    jobs.note = ("arq Worker(burst, poll_delay=0.05, queue_read_limit=500, max_jobs=20) "
                 "running no-op jobs; compare with the apply stage's events/s, which include "
                 "the SQLite work")
    result.figures += [enqueue, jobs]
    result.commands.append("in-process: redis-py/arq against a private redis-server (AOF "
                           "everysec), one awaited call per event")
    return result
