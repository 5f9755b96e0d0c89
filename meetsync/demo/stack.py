"""The demo's stack, as the Procfile runs it: the receiver and a worker as processes of their
own, started, waited for and stopped; what the worker has applied and counted, read from Redis.
``scripts/isolation_check.py`` runs the same stack."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from arq.constants import default_queue_name, in_progress_key_prefix

from meetsync.queue import STATS, backlog, refetch_job_id
from meetsync.worker.lanes import outstanding


async def wait_until_applied(
    redis: aioredis.Redis, patience: float, partitions: int = 1
) -> None:
    """Every partition of the event stream empty, nothing held unacknowledged."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        waiting = await backlog(redis, partitions)
        if waiting.queued == 0 and waiting.pending == 0:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the worker did not drain the queue in time")


async def wait_until_idle(
    redis: aioredis.Redis, patience: float, partitions: int = 1
) -> None:
    """The event stream drained, the refetch lanes empty and no refetch job of an older release
    (``refetch_appointment``) waiting, deferred for a retry or running: what hints asked for is
    in the mirror. (Cron jobs are not waited
    for: arq keeps a cron job's in-progress key for a minute after it ran.)"""
    deadline = time.monotonic() + patience
    prefix = refetch_job_id("", "", "").split(":")[0].encode() + b":"  # b"refetch:"
    pattern = in_progress_key_prefix.encode() + prefix + b"*"
    while True:
        await wait_until_applied(redis, max(deadline - time.monotonic(), 0.1), partitions)
        queued = [job for job in await redis.zrange(default_queue_name, 0, -1)
                  if job.startswith(prefix)]
        running = [key async for key in redis.scan_iter(match=pattern, count=1000)]
        if (not queued and not running and await outstanding(redis) == 0
                and (await backlog(redis, partitions)).queued == 0):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not finish its refetch jobs in time")
        await asyncio.sleep(0.2)


def spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "meetsync.cli", command], env=env, stdout=out, stderr=out
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    """Terminate the stack's processes together, killing any that has not exited in 10 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_ready(url: str, proc: subprocess.Popen[bytes], patience: float = 30) -> None:
    deadline = time.monotonic() + patience
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the receiver exited at start-up; see its log")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the receiver did not come up")


def added(total: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What the counters gained since ``before`` (one provider's part of the stack's totals)."""
    return {k: v - before.get(k, 0) for k, v in total.items()}


async def stats(redis: aioredis.Redis) -> dict[str, int]:
    """The worker's counters (applied, duplicates, stale, dead letters...)."""
    return {k.decode(): int(v) for k, v in (await redis.hgetall(STATS)).items()}  # type: ignore[misc]
