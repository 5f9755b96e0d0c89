"""PostgreSQL apply: one worker process drains a pre-filled stream into one database, against a
raw ``COPY`` upsert of the same rows measured in the same run. (One stream is served by one
worker: the one holding its lease, ``worker/partitions.py``. How workers add up over
partitioned streams is the pg_workers stage.)

Each worker is ``python -m bench.memworker --go``: an Applier with its own StoreThread and
PostgreSQL connection in a process of its own, as in ``meetsync worker``. The stream is filled
(untimed) and every worker has connected before any reads. The time runs from the go to the
moment the stream's counters show every event applied. Each count of workers drains into a new
database; the counts are run in turn, then again in reverse order.

While they drain, ``pg_stat_activity`` is sampled: is each worker's session on the server's
CPU, waiting for another transaction's lock, waiting for the worker's next statement, or idle
between batches. The CPU used by the workers, their PostgreSQL backends and the whole machine
is read from ``/proc``. Together these say why more workers are (or are not) faster.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from bench import pg, procs, workload
from bench.common import Figure, Options, StageResult
from bench.stages.apply import BATCH, bench_events, row
from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.queue import EVENT_STREAM, FIELD, STATS

WORKERS = (1,)  # one stream: one lease holder
COPY_TARGET = 0.25


@dataclass
class Drain:
    """What one count of workers did, summed over the rounds."""

    seconds: float = 0.0
    worker_cpu: float = 0.0
    backend_cpu: float = 0.0
    redis_cpu: float = 0.0
    machine_busy: float = 0.0  # CPU seconds of the whole machine, all cores
    busy_waits: int = 0
    states: dict[str, int] = field(default_factory=dict)

    def add_states(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self.states[name] = self.states.get(name, 0) + count

    def shares(self) -> dict[str, float]:
        total = sum(self.states.values()) or 1
        ordered = sorted(self.states.items(), key=lambda item: -item[1])
        return {name: count / total for name, count in ordered}


def fill(client: redis.Redis, events: Sequence[Event]) -> None:
    client.delete(EVENT_STREAM, STATS)
    for start in range(0, len(events), 5000):
        pipe = client.pipeline(transaction=False)
        for event in events[start : start + 5000]:
            pipe.xadd(EVENT_STREAM, {FIELD: event.to_json()})
        pipe.execute()


def processed(client: redis.Redis) -> int:
    counts: list[bytes | None] = client.hmget(STATS, ["applied", "duplicates"])  # type: ignore[assignment]
    return sum(int(n or 0) for n in counts)


def backend_pids(db_url: str) -> list[int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'meetsync'")]


def drain(redis_server: RedisServer, db_url: str, events: Sequence[Event], workers: int,
          log: Path, into: Drain, patience: float) -> None:
    """``workers`` processes drain ``events`` (queued first) into the database at ``db_url``."""
    redis_url = redis_server.url
    redis_pid = redis_server.process.pid if redis_server.process else 0
    client = redis.Redis.from_url(redis_url)
    fill(client, events)
    args = [procs.PYTHON, "-m", "bench.memworker", "--redis", redis_url, "--db", db_url, "--go"]
    started_procs: list[subprocess.Popen[bytes]] = []
    sampler: pg.ActivitySampler | None = None
    try:
        with log.open("ab") as out:
            for _ in range(workers):
                started_procs.append(subprocess.Popen(
                    args, cwd=procs.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=out))
        for proc in started_procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"a worker did not start; see {log.name}")
        backends = backend_pids(db_url)
        sampler = pg.ActivitySampler(db_url)
        sampler.start()
        cpu_before = sum(pg.cpu_seconds(proc.pid) for proc in started_procs)
        backend_before = sum(pg.cpu_seconds(pid) for pid in backends)
        redis_before = pg.cpu_seconds(redis_pid)
        busy_before, _ = pg.machine_busy()
        started = time.perf_counter()
        for proc in started_procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + patience
        while processed(client) < len(events):
            if any(proc.poll() is not None for proc in started_procs):
                raise RuntimeError(f"a worker died; see {log.name}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{processed(client)} of {len(events)} applied in "
                                   f"{patience:.0f} s")
            time.sleep(0.01)
        into.seconds += time.perf_counter() - started
        busy_after, _ = pg.machine_busy()
        into.machine_busy += (busy_after - busy_before) / 100  # jiffies: USER_HZ = 100
        into.worker_cpu += sum(pg.cpu_seconds(proc.pid) for proc in started_procs) - cpu_before
        into.backend_cpu += sum(pg.cpu_seconds(pid) for pid in backends) - backend_before
        into.redis_cpu += pg.cpu_seconds(redis_pid) - redis_before
        sampler.stop()
        into.add_states(dict(sampler.states))
    finally:
        if sampler is not None:
            sampler.stop()
        for proc in started_procs:
            procs.stop(proc, close_stdin=True)
        client.close()


# What each run varies: the schema, and the order of the stream.
CASES = {
    "shared": "the events in the simulator's order: consecutive batches share appointments",
}


CASES_FIRST = next(iter(CASES))


def unshared(events: Sequence[Event]) -> list[Event]:
    """``events``, each under an appointment of its own."""
    return [workload.renamed([event], copy)[0] for copy, event in enumerate(events)]


def shared_appointments(events: Sequence[Event]) -> float:
    """The mean share of a batch's appointments that the batch before it also has."""
    batches = [{e.appointment_id for e in events[start : start + BATCH]}
               for start in range(0, len(events), BATCH)]
    shares = [len(one & two) / len(two) for one, two in itertools.pairwise(batches)]
    return sum(shares) / len(shares) if shares else 0.0


def run(options: Options) -> StageResult:
    result = StageResult("pg apply")
    if not Path("/proc/stat").exists():
        result.skipped = "no /proc: cannot read CPU use here"
        return result
    work = options.workdir / "pg-apply"
    work.mkdir(parents=True, exist_ok=True)
    events = bench_events(options)[: options.count(50_000, 1_500)]
    rows = [row(event) for event in events]
    rounds = options.count(2, 1)
    # --quick: each case once, and one count of workers more than 1
    drains = {(case, n): Drain() for case in CASES for n in WORKERS
              if not options.quick or n == 1 or (n == 2 and case == CASES_FIRST)}
    streams = {case: unshared(events) if case == "unshared" else events
               for case in CASES}
    copy_seconds = 0.0
    log = work / "workers.log"
    with pg.private_server(work / "postgres") as server, \
            RedisServer(work / "redis", persistent=False) as redis_server:
        for number in range(rounds):
            copy_seconds += pg.copy_upsert(server.create_database(f"raw_{number}"), rows, BATCH)
            order = list(drains) if number % 2 == 0 else list(reversed(drains))
            for case, workers in order:
                db_url = server.create_database(f"mirror_{number}_{len(case)}_{workers}")
                drain(redis_server, db_url, streams[case], workers, log, drains[case, workers],
                      patience=options.pick(900, 60))
    busy = log.read_text(encoding="utf-8", errors="replace").count("store_busy")
    total = len(events) * rounds
    baseline = total / copy_seconds
    result.details += [
        "| case | workers | events/s | / COPY | / 1 worker | CPU µs/event: workers "
        "| PostgreSQL | Redis | cores busy: ours / machine | the workers' sessions "
        "(pg_stat_activity samples) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (case, workers), done in drains.items():
        rate = total / done.seconds
        one = total / drains[case, 1].seconds
        label = "" if case == CASES_FIRST else f" ({case})"
        name = f"pg apply{label}: {workers} worker{'s' if workers > 1 else ''}"
        result.figures.append(Figure(name, "events/s", rate, baseline)
                              .require_ratio_at_least(COPY_TARGET))
        if workers > 1:
            result.figures.append(Figure(f"pg apply{label}: {workers} workers vs 1",
                                         "events/s", rate, one))
        ours = (done.worker_cpu + done.backend_cpu + done.redis_cpu) / done.seconds
        machine = done.machine_busy / done.seconds
        result.details.append(
            f"| {case} | {workers} | {rate:,.0f} | {rate / baseline:.3f} | {rate / one:.2f} "
            f"| {done.worker_cpu / total * 1e6:.0f} | {done.backend_cpu / total * 1e6:.0f} "
            f"| {done.redis_cpu / total * 1e6:.0f} | {ours:.2f} / {machine:.2f} of "
            f"{os.cpu_count()} | {pg.describe_shares(done.shares())} |")
    result.notes += [
        f"{len(events):,} distinct events (simulator lifecycles), {rounds} round(s) of "
        f"{', '.join(str(n) for n in WORKERS if (CASES_FIRST, n) in drains)} workers in "
        "each case (second round in reverse "
        f"order); COPY baseline {baseline:,.0f} rows/s; store_busy (a lock wait past the 5 s "
        f"timeout) logged {busy} time(s)",
        *[f"case {name!r}: {what}" for name, what in CASES.items()],
        f"a batch of {BATCH} shares {shared_appointments(events):.0%} of its appointments "
        "with the batch before it (simulator order; every pair shares some): a worker locks "
        "all its batch's appointments before its first write, so one shared appointment "
        "makes it wait for the other worker's commit",
        "sessions: running = a statement on the server's CPU; client = idle in its "
        "transaction, waiting for the worker's next statement; idle = between batches "
        "(the worker reads Redis, decodes, acknowledges); appointment locks / change-log lock "
        "= waiting for another worker's transaction to commit; cores busy: ours = the workers, "
        "their PostgreSQL backends and Redis; machine = everything on it (other users too)",
    ]
    result.commands += [
        "workers: " + procs.shown([procs.PYTHON, "-m", "bench.memworker", "--redis",
                                   "redis://127.0.0.1:PORT/0", "--db",
                                   "postgresql://postgres@127.0.0.1:PORT/mirror_R_N", "--go"])
        + f"  (Applier(batch_size={BATCH}): the worker's default batch)",
        f"baseline: COPY of {BATCH} rows into a staging table, then INSERT … SELECT … ON "
        "CONFLICT DO UPDATE (guarded) into one table, one transaction per batch (bench/pg.py)",
        "server: meetsync.dev.pg_server.PostgresServer (private, fsync=off); "
        "Redis: private, no AOF",
    ]
    return result
