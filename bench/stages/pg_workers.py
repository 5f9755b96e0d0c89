"""PostgreSQL: 1 and 2 worker processes as the Procfile starts them (``meetsync worker``) drain
one backlog on a partitioned queue into one database; 2 against 1 is the figure.

The workers start on an empty queue (``MEETSYNC_QUEUE_PARTITIONS``) and are given time to share
its streams out (``worker/partitions.py``) before the backlog is queued as the receiver queues
it (each appointment's events on its partition). The time runs from the first event queued to
the moment the stream's counters show every event applied. Each count of workers drains into a
new database; the counts run in turn, then again in reverse order, after one untimed drain that
warms the server (its caches, the sessions' first statements) for whichever count comes first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import redis

from bench import pg, procs
from bench.common import Figure, Options, StageResult
from bench.stages.apply import bench_events
from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.queue import FIELD, STATS, stream_of, streams

WORKERS = (1, 2)
PARTITIONS = 8
SCALE_TARGET = 1.5  # 2 workers against 1
SETTLE_SECONDS = 3.0  # leases change hands within two ticks of a second


def queue(client: redis.Redis, events: Sequence[Event]) -> None:
    for start in range(0, len(events), 5000):
        pipe = client.pipeline(transaction=False)
        for event in events[start : start + 5000]:
            pipe.xadd(stream_of(event, PARTITIONS), {FIELD: event.to_json()})
        pipe.execute()


def processed(client: redis.Redis) -> int:
    counts: list[bytes | None] = client.hmget(STATS, ["applied", "duplicates"])  # type: ignore[assignment]
    return sum(int(n or 0) for n in counts)


def drain(redis_server: RedisServer, db_url: str, events: Sequence[Event], workers: int,
          work: Path, patience: float) -> tuple[float, int]:
    """Seconds ``workers`` processes take to apply ``events`` queued at once, and how many
    they applied twice (the inbox's duplicates)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    env = procs.meetsync_env(db_url, redis_server.url,
                             MEETSYNC_QUEUE_PARTITIONS=str(PARTITIONS))
    logs = [work / f"worker-{workers}-{n}.log" for n in range(workers)]
    try:
        with ExitStack() as stack:
            started = [stack.enter_context(procs.running(
                [procs.PYTHON, "-m", "meetsync.cli", "worker"], log, env)) for log in logs]
            deadline = time.monotonic() + 60
            while not all("applier_started" in log.read_text(errors="replace")
                          for log in logs):
                if any(proc.poll() is not None for proc in started) or (
                        time.monotonic() > deadline):
                    raise RuntimeError(f"a worker did not start; see {work}")
                time.sleep(0.1)
            time.sleep(SETTLE_SECONDS)
            began = time.perf_counter()
            queue(client, events)
            deadline = time.monotonic() + patience
            while processed(client) < len(events):
                if any(proc.poll() is not None for proc in started):
                    raise RuntimeError(f"a worker died; see {work}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{processed(client)} of {len(events)} applied in "
                                       f"{patience:.0f} s")
                time.sleep(0.01)
            seconds = time.perf_counter() - began
            return seconds, int(client.hget(STATS, "duplicates") or 0)  # type: ignore[arg-type]
    finally:
        client.close()


def run(options: Options) -> StageResult:
    result = StageResult("pg workers")
    work = options.workdir / "pg-workers"
    work.mkdir(parents=True, exist_ok=True)
    events = bench_events(options)[: options.count(60_000, 1_500)]
    rounds = options.count(2, 1)
    seconds = dict.fromkeys(WORKERS, 0.0)
    twice = dict.fromkeys(WORKERS, 0)
    with pg.private_server(work / "postgres") as server, \
            RedisServer(work / "redis", persistent=False) as redis_server:
        drain(redis_server, server.create_database("warm_up"), events[: len(events) // 4], 1,
              work, patience=options.pick(900, 120))
        for number in range(rounds):
            order = WORKERS if number % 2 == 0 else tuple(reversed(WORKERS))
            for workers in order:
                db_url = server.create_database(f"mirror_{number}_{workers}")
                took, duplicates = drain(redis_server, db_url, events, workers, work,
                                         patience=options.pick(900, 120))
                seconds[workers] += took
                twice[workers] += duplicates
    total = len(events) * rounds
    one = total / seconds[1]
    for workers in WORKERS:
        rate = total / seconds[workers]
        result.figures.append(Figure(f"pg workers: {workers} worker{'s' * (workers > 1)}",
                                     "events/s", rate))
        if workers > 1:
            result.figures.append(Figure(f"pg workers: {workers} workers vs 1", "events/s",
                                         rate, one).require_ratio_at_least(SCALE_TARGET))
    result.notes += [
        f"{len(events):,} distinct events (simulator lifecycles, simulator order) on "
        f"{PARTITIONS} partitions, {rounds} round(s) of {', '.join(map(str, WORKERS))} "
        "worker(s) (second round in reverse order); the time runs from the first event "
        "queued to the last applied",
        f"streams: {len(streams(PARTITIONS))} (the partitions and the unpartitioned key); "
        "events applied twice (inbox duplicates): "
        + ", ".join(f"{twice[n]} with {n}" for n in WORKERS),
    ]
    result.commands += [
        "workers: MEETSYNC_QUEUE_PARTITIONS=8 MEETSYNC_DB=postgresql://…/mirror_R_N "
        "REDIS_URL=redis://127.0.0.1:PORT/0 python -m meetsync.cli worker  (N of them, the "
        "Procfile's worker)",
        "server: meetsync.pg_server.PostgresServer (private, fsync=off); Redis: private, no AOF",
    ]
    return result
