"""Memory: the Applier's resident set after 1,000,000 events against after 100,000.

The worker runs alone in its own process (``bench.memworker``); this process feeds it distinct
events (simulator lifecycles, renamed copy after copy: the mirror grows as in production) and
reads its RSS from ``/proc`` once the stream is drained at each checkpoint.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from bench import procs, workload
from bench.common import Figure, Options, StageResult
from meetsync.events import Event
from meetsync.redis_server import RedisServer
from meetsync.worker.queue import EVENT_STREAM, FIELD, STATS

GROWTH_TARGET = 0.10
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


def run(options: Options) -> StageResult:
    result = StageResult("memory")
    if not Path("/proc/self/status").exists():
        result.skipped = "no /proc: cannot read a process's resident set size here"
        return result
    work = options.workdir / "memory"
    work.mkdir(parents=True, exist_ok=True)
    first, last = options.count(100_000, 2_000), options.count(1_000_000, 20_000)
    feeder = Feeder(workload.events(workload.deliveries(options.count(4000, 300))))
    with RedisServer(work / "redis", persistent=False) as server:
        args = [procs.PYTHON, "-m", "bench.memworker", "--redis", server.url, "--db",
                str(work / "mirror.db")]
        with (work / "memworker.log").open("ab") as log:
            worker = subprocess.Popen(args, cwd=procs.ROOT, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=log)
        try:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != b"ready":
                raise RuntimeError("the applier process did not start; see memworker.log")
            client = redis.Redis.from_url(server.url)
            started = time.monotonic()
            feeder.feed(client, first)
            wait_applied(client, first, worker, patience=120)
            at_first = rss_bytes(worker.pid)
            feeder.feed(client, last)
            wait_applied(client, last, worker, patience=400)
            elapsed = time.monotonic() - started
            at_last, peak = rss_bytes(worker.pid), rss_bytes(worker.pid, "VmHWM")
            client.close()
        finally:
            procs.stop(worker, close_stdin=True)
    growth = at_last / at_first - 1
    figure = Figure("memory", "MB RSS", at_last / 1e6, at_first / 1e6)
    figure.target = f"growth < {GROWTH_TARGET:.0%}"
    figure.met = growth < GROWTH_TARGET
    figure.note = (f"RSS after {last:,} events vs after {first:,} (baseline column): "
                   f"{growth:+.1%}; peak {peak / 1e6:.0f} MB; {last / elapsed:,.0f} events/s "
                   "fed and applied" + (" — quick run: 20,000 vs 2,000 events" if options.quick
                                        else ""))
    result.figures.append(figure)
    result.commands += ["worker: " + procs.shown(args),
                        f"feed: XADD pipelines of {CHUNK}, at most {MAX_BACKLOG:,} queued ahead"]
    return result
