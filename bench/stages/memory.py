"""Memory and cost curve: the Applier's resident set and events/s from 100,000 to 1,000,000
events, on a SQLite mirror and on a PostgreSQL one (a private server).

The worker runs alone in its own process (``bench.memworker``); this process feeds it distinct
events (simulator lifecycles, renamed copy after copy: the mirror grows as in production) and
reads its RSS from ``/proc`` once the stream is drained at each checkpoint (100,000, 300,000,
1,000,000). The memory figure is RSS at the last checkpoint against the first; the cost curve,
events/s between the last two checkpoints against over the first.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bench import pg, procs, workload
from bench.common import Figure, Options, StageResult
from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.queue import EVENT_STREAM, FIELD, STATS

GROWTH_TARGET = 0.10
CHECKPOINTS = (100_000, 300_000, 1_000_000)
QUICK_CHECKPOINTS = (1_000, 2_000, 4_000)
CHUNK = 5000
MAX_BACKLOG = 100_000


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


class Feeder:
    """Distinct events, generated chunk by chunk from one simulator pool."""

    def __init__(self, pool: list[Event]) -> None:
        self.pool = pool
        self.copy = 0
        self.sent = 0
        self._buffer: list[Event] = []

    def take(self, n: int) -> list[Event]:
        while len(self._buffer) < n:
            self.copy += 1
            self._buffer += workload.renamed(self.pool, self.copy)
        taken, self._buffer = self._buffer[:n], self._buffer[n:]
        return taken

    def feed(self, client: redis.Redis, total: int) -> None:
        """Queue events until ``total`` have been sent, never more than ``MAX_BACKLOG`` ahead."""
        while self.sent < total:
            if int(client.xlen(EVENT_STREAM)) > MAX_BACKLOG:  # type: ignore[arg-type]
                time.sleep(0.1)
                continue
            batch = self.take(min(CHUNK, total - self.sent))
            pipe = client.pipeline(transaction=False)
            for event in batch:
                pipe.xadd(EVENT_STREAM, {FIELD: event.to_json()})
            pipe.execute()
            self.sent += len(batch)


def applied(client: redis.Redis) -> int:
    return int(client.hget(STATS, "applied") or 0)  # type: ignore[arg-type]


def wait_applied(client: redis.Redis, total: int, worker: subprocess.Popen[bytes],
                 patience: float) -> None:
    deadline = time.monotonic() + patience
    while applied(client) < total:
        if worker.poll() is not None:
            raise RuntimeError("the applier process died; see memworker.log")
        if time.monotonic() > deadline:
            raise TimeoutError(f"applied {applied(client)} of {total} in {patience:.0f} s")
        time.sleep(0.1)


@dataclass(frozen=True)
class Checkpoint:
    """The worker once ``events`` were applied."""

    events: int
    seconds: float  # since the first event was fed
    rss: int
    peak: int
    mirror_bytes: int


def mirror_bytes(db: Path | str) -> int:
    if isinstance(db, str):
        return pg.database_bytes(db)
    return sum(path.stat().st_size for path in db.parent.glob(db.name + "*"))


def curve(redis_url: str, db: Path | str, pool: list[Event], checkpoints: Sequence[int],
          log: Path) -> tuple[list[Checkpoint], list[str]]:
    """One applier process fed ``checkpoints[-1]`` distinct events; its state at each."""
    feeder = Feeder(pool)
    args = [procs.PYTHON, "-m", "bench.memworker", "--redis", redis_url, "--db", str(db)]
    with log.open("ab") as out:
        worker = subprocess.Popen(args, cwd=procs.ROOT, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=out)
    found = []
    try:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the applier process did not start; see {log.name}")
        client = redis.Redis.from_url(redis_url)
        client.delete(EVENT_STREAM, STATS)
        started = time.monotonic()
        for total in checkpoints:
            feeder.feed(client, total)
            wait_applied(client, total, worker, patience=max(120, total / 200))
            found.append(Checkpoint(total, time.monotonic() - started, rss_bytes(worker.pid),
                                    rss_bytes(worker.pid, "VmHWM"), mirror_bytes(db)))
        client.close()
    finally:
        procs.stop(worker, close_stdin=True)
    return found, args


LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def run(options: Options) -> StageResult:
    result = StageResult("memory and cost curve")
    if not Path("/proc/self/status").exists():
        result.skipped = "no /proc: cannot read a process's resident set size here"
        return result
    work = options.workdir / "memory"
    work.mkdir(parents=True, exist_ok=True)
    checkpoints = CHECKPOINTS if not options.quick else QUICK_CHECKPOINTS
    pool = workload.events(workload.deliveries(options.count(4000, 300)))
    curves: dict[str, list[Checkpoint]] = {}
    with RedisServer(work / "redis", persistent=False) as server, \
            pg.private_server(work / "postgres") as pg_server:
        for backend in LABELS:
            db = (work / "mirror.db" if backend == "sqlite"
                  else pg_server.create_database("mirror"))
            curves[backend], args = curve(server.url, db, pool, checkpoints,
                                          work / f"memworker-{backend}.log")
            result.commands.append(f"worker ({LABELS[backend]}): " + procs.shown(args))
    result.details += [
        "| mirror | events | events/s since the last row | events/s overall | worker RSS MB "
        "| peak MB | mirror on disk MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, points in curves.items():
        first, last = points[0], points[-1]
        growth = last.rss / first.rss - 1
        name = "memory" if backend == "sqlite" else f"memory: {LABELS[backend]}"
        figure = Figure(name, "MB RSS", last.rss / 1e6, first.rss / 1e6)
        figure.target = f"growth < {GROWTH_TARGET:.0%}"
        figure.met = growth < GROWTH_TARGET
        figure.note = (f"RSS after {last.events:,} events vs after {first.events:,} (baseline "
                       f"column): {growth:+.1%}; peak {last.peak / 1e6:.0f} MB")
        result.figures.append(figure)
        before = points[-2] if len(points) > 1 else Checkpoint(0, 0.0, 0, 0, 0)
        latest = (last.events - before.events) / (last.seconds - before.seconds)
        figure = Figure(f"cost curve: {LABELS[backend]}", "events/s", latest,
                        first.events / first.seconds)
        figure.note = (f"events/s from {before.events:,} to {last.events:,} events (ours "
                       f"column) vs over the first {first.events:,} (baseline column)")
        result.figures.append(figure)
        previous = Checkpoint(0, 0.0, 0, 0, 0)
        for point in points:
            result.details.append(
                f"| {LABELS[backend]} | {point.events:,} "
                f"| {(point.events - previous.events) / (point.seconds - previous.seconds):,.0f} "
                f"| {point.events / point.seconds:,.0f} | {point.rss / 1e6:.0f} "
                f"| {point.peak / 1e6:.0f} | {point.mirror_bytes / 1e6:,.0f} |")
            previous = point
    pg_last, lite_last = curves["postgresql"][-1], curves["sqlite"][-1]
    result.figures.append(Figure(
        "cost curve: PostgreSQL vs SQLite", "events/s", pg_last.events / pg_last.seconds,
        lite_last.events / lite_last.seconds))
    result.notes.append(
        f"one worker process per mirror, fed {checkpoints[-1]:,} distinct events (simulator "
        "lifecycles, renamed copy after copy: the mirror grows as in production), stopping at "
        f"{', '.join(f'{n:,}' for n in checkpoints)} until all were applied; events/s = fed and"
        " applied (feeding shares the machine); PostgreSQL's own memory is not in the RSS"
        + (" — quick run: sizes cut down" if options.quick else ""))
    result.commands += [
        f"feed: XADD pipelines of {CHUNK}, at most {MAX_BACKLOG:,} queued ahead",
        "PostgreSQL: meetsync.dev.pg_server.PostgresServer (private, fsync=off), "
        "store/postgres.py's schema",
    ]
    return result
