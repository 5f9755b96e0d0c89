"""End to end, through ``meetsync serve`` and ``meetsync worker``, once on a SQLite mirror and
once on a PostgreSQL one (a private server), with the same load.

Latency: a steady 1,000 signed POSTs/s; the time from each POST's due time until its event is
visible in the mirror, and nothing lost. A watcher thread polls the mirror's inbox every 2 ms
and notes when each event id appears; the paced load generator (another process) notes when
each POST was due. Both use the machine-wide monotonic clock.

Throughput: wrk sends POSTs as fast as it can for a few seconds (distinct events, the same file
for both backends); persisted events/s = the events the worker applied / the time from wrk's
start until the stream is empty (every event queued is in the mirror). The baseline is the
verify-only route (``bench.servers bare-ingest``, the ingest stage's) under the same wrk
command, just before each backend's run.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg
import redis

from bench import pg, procs, workload, wrk
from bench.common import Figure, Options, StageResult, percentile
from meetsync.dev.redis_server import RedisServer
from meetsync.providers.savvycal.simulator import Delivery
from meetsync.queue import EVENT_STREAM, STATS

RATE = 1000
P99_TARGET_MS = 100.0
PERSISTED_TARGET = {"sqlite": 0.50, "postgresql": 0.35}  # of the verify-only route
POLL_SECONDS = 0.002
WATCH_QUERY = "SELECT rowid, id FROM events WHERE rowid > ? ORDER BY rowid"
# PostgreSQL has no rowid. One worker commits its transactions one after another, so the
# inbox's applied_at (clock_timestamp(), ms) only grows from one commit to the next: rows at
# the last instant seen are read again, never missed.
PG_WATCH_QUERY = "SELECT applied_at, id FROM events WHERE applied_at >= %s ORDER BY applied_at"
BACKENDS = ("sqlite", "postgresql")


class Watcher(threading.Thread):
    """Notes the monotonic time each event id first shows up in the mirror's inbox."""

    def __init__(self, db: Path | str) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.seen: dict[str, float] = {}
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)

    def run(self) -> None:
        with self._poller() as poll:
            while not self._stopping.is_set():
                ids = poll()
                now = time.monotonic()
                for event_id in ids:
                    self.seen.setdefault(event_id, now)
                time.sleep(POLL_SECONDS)

    @contextmanager
    def _poller(self) -> Iterator[Callable[[], list[str]]]:
        if isinstance(self.db, str):  # a postgresql:// URL
            with psycopg.connect(self.db, autocommit=True) as conn:
                last = ""

                def poll_pg() -> list[str]:
                    nonlocal last
                    rows = conn.execute(PG_WATCH_QUERY, (last,)).fetchall()
                    if rows:
                        last = rows[-1][0]
                    return [event_id for _, event_id in rows]

                yield poll_pg
            return
        lite = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        rowid = 0

        def poll_sqlite() -> list[str]:
            nonlocal rowid
            rows = lite.execute(WATCH_QUERY, (rowid,)).fetchall()
            if rows:
                rowid = rows[-1][0]
            return [event_id for _, event_id in rows]

        try:
            yield poll_sqlite
        finally:
            lite.close()


def _mirror_ready(db: Path | str) -> bool:
    if isinstance(db, str):
        try:
            with psycopg.connect(db, connect_timeout=1) as conn:
                row = conn.execute("SELECT to_regclass('events')").fetchone()
                return row is not None and row[0] is not None
        except psycopg.Error:
            return False
    if not db.exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            conn.execute("SELECT count(*) FROM events").fetchone()
        return True
    except sqlite3.Error:
        return False


def _wait_for_mirror(db: Path | str, worker: subprocess.Popen[bytes], patience: float = 30.0
                     ) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError("meetsync worker exited at start-up; see its log")
        if _mirror_ready(db):
            return
        time.sleep(0.1)
    raise TimeoutError("the worker did not create the mirror")


@dataclass
class Latency:
    sent: list[list[float]]
    accepted: dict[str, float]
    seen: dict[str, float]
    needed: int

    def figure(self, name: str) -> Figure:
        latencies = [(self.seen[event_id] - due) * 1000
                     for event_id, due in self.accepted.items() if event_id in self.seen]
        answers = [(answered - due) * 1000 for _, due, answered, _ in self.sent]
        lost = len(self.accepted) - len(latencies)
        refused = len(self.sent) - len(self.accepted)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        figure = Figure(name, "ms p99 (POST due → row visible)", p99, p50_ms=p50, p99_ms=p99)
        figure.target = f"p99 < {P99_TARGET_MS:.0f} ms, nothing lost"
        figure.met = (p99 < P99_TARGET_MS and lost == 0 and refused == 0
                      and len(self.sent) == self.needed)
        figure.note = (f"{len(self.sent)} POSTs at {RATE}/s: {len(self.accepted)} answered "
                       f"202, {refused} not, {lost} accepted but never visible; max "
                       f"{max(latencies, default=0):.1f} ms; HTTP answer p50/p99 "
                       f"{percentile(answers, 50):.1f}/{percentile(answers, 99):.1f} ms")
        return figure


@dataclass
class Throughput:
    persisted: int
    seconds: float
    answered: int
    refused: int

    @property
    def rate(self) -> float:
        return self.persisted / self.seconds


def _processed(client: redis.Redis) -> int:
    counts: list[bytes | None] = client.hmget(STATS, ["applied", "duplicates"])  # type: ignore[assignment]
    return sum(int(n or 0) for n in counts)


def _wait_drained(client: redis.Redis, worker: subprocess.Popen[bytes], patience: float
                  ) -> None:
    """Until the stream is empty: the worker deletes an entry once its batch committed."""
    deadline = time.monotonic() + patience
    while int(client.xlen(EVENT_STREAM)):  # type: ignore[arg-type]
        if worker.poll() is not None:
            raise RuntimeError("meetsync worker exited; see its log")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stream still held events after {patience:.0f} s")
        time.sleep(0.01)


def burst(client: redis.Redis, args: list[str], worker: subprocess.Popen[bytes],
          patience: float) -> Throughput:
    """wrk's ``args`` against our receiver; then wait until every queued event is applied."""
    before = _processed(client)
    started = time.monotonic()
    measured = wrk.run(args)
    time.sleep(0.05)  # a request wrk gave up on at its deadline may still be queued
    _wait_drained(client, worker, patience)
    seconds = time.monotonic() - started
    return Throughput(_processed(client) - before, seconds, measured.requests - measured.non_2xx,
                      measured.non_2xx + measured.errors)


def one_backend(db: Path | str, work: Path, played: list[Delivery], posts: Path,
                burst_args: Callable[[int], list[str]] | None, seconds: float,
                ) -> tuple[Latency, Throughput | None, list[str]]:
    """The latency run, then the throughput run, with one serve and one worker."""
    needed = int(RATE * seconds)
    sent_file = work / "sent.json"
    with RedisServer(work / "redis") as server:
        env = procs.meetsync_env(db, server.url)
        worker_args = [procs.PYTHON, "-m", "meetsync.cli", "worker"]
        with procs.server("meetsync", work / "serve.log", env) as (port, _), \
                procs.running(worker_args, work / "worker.log", env) as worker:
            _wait_for_mirror(db, worker)
            watcher = Watcher(db)
            watcher.start()
            load_args = [procs.PYTHON, "-m", "bench.loadgen", "--port", str(port), "--rate",
                         str(RATE), "--seconds", str(seconds), "--requests", str(posts),
                         "--out", str(sent_file)]
            subprocess.run(load_args, cwd=procs.ROOT, check=True, timeout=seconds + 120)
            sent = orjson.loads(sent_file.read_bytes())
            accepted = {played[index].event_id: due for index, due, _, status in sent
                        if status == 202}
            client = redis.Redis.from_url(server.url)
            # A worker that fell behind is waited for (its latencies say by how much): an
            # event still missing once the stream is empty was lost, and the throughput run
            # starts from an empty stream.
            _wait_drained(client, worker, patience=600)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not accepted.keys() <= watcher.seen.keys():
                time.sleep(0.05)
            watcher.stop()
            latency = Latency(sent, accepted, dict(watcher.seen), needed)
            throughput = None
            if burst_args is not None:
                throughput = burst(client, burst_args(port), worker, patience=600)
            client.close()
    commands = [
        "web: " + procs.shown(procs.serve_command(port)),
        "worker: " + procs.shown(worker_args) + "  (arq worker, Applier inside, INFO logs)",
        "load: " + procs.shown(load_args),
    ]
    return latency, throughput, commands


def run(options: Options) -> StageResult:
    result = StageResult("end to end")
    work = options.workdir / "e2e"
    work.mkdir(parents=True, exist_ok=True)
    seconds = options.pick(30, 2)
    played = workload.deliveries(options.count(11_000, 1_200))
    needed = int(RATE * seconds)
    if len(played) < needed:
        raise RuntimeError(f"only {len(played)} deliveries for {needed} requests")
    posts = work / "posts.txt"
    workload.write_requests(posts, workload.signed_posts(played[:needed]))
    # Distinct from the latency run's events (another simulator seed); wrk cycles the file.
    bursts = work / "bursts.txt"
    workload.write_requests(bursts, workload.signed_posts(
        workload.deliveries(options.count(16_000, 300), seed=workload.SEED + 1)))
    burst_seconds = options.pick(8, 1)

    def burst_args(port: int) -> list[str]:
        return wrk.command(f"http://127.0.0.1:{port}/webhooks/savvycal", bursts,
                           seconds=burst_seconds)

    if not wrk.available():
        result.notes.append("wrk is not installed (apt-get install wrk): no throughput figures")
    latencies: dict[str, Latency] = {}
    persisted: dict[str, Throughput] = {}
    verify_only: dict[str, float] = {}
    with pg.private_server(work / "postgres") as pg_server, \
            procs.server("bare-ingest", work / "bare.log") as (bare_port, _):
        for backend in BACKENDS:
            db: Path | str = (work / "mirror.db" if backend == "sqlite"
                              else pg_server.create_database("e2e"))
            if wrk.available():
                bare = wrk.run(burst_args(bare_port))
                verify_only[backend] = bare.rate
            latency, throughput, commands = one_backend(
                db, work / backend, played, posts,
                burst_args if wrk.available() else None, seconds)
            latencies[backend] = latency
            if throughput is not None:
                persisted[backend] = throughput
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    for backend, latency in latencies.items():
        result.figures.append(latency.figure(
            "end to end" if backend == "sqlite" else f"end to end: {label[backend]}"))
    for backend, done in persisted.items():
        figure = Figure(f"e2e persisted: {label[backend]}", "events/s (vs verify-only req/s)",
                        done.rate, verify_only[backend])
        figure.note = (f"{done.persisted:,} events applied {done.seconds:.1f} s after wrk "
                       f"started ({burst_seconds:.0f} s of load): {done.answered:,} answered "
                       f"202, {done.refused} not")
        result.figures.append(figure.require_ratio_at_least(PERSISTED_TARGET[backend]))
    if len(persisted) == len(BACKENDS):
        result.figures.append(Figure(
            "e2e persisted: PostgreSQL vs SQLite", "events/s", persisted["postgresql"].rate,
            persisted["sqlite"].rate))
    result.commands += [
        *commands,
        f"visible: a watcher thread polls the inbox every {POLL_SECONDS * 1000:.0f} ms: "
        + WATCH_QUERY + " (PostgreSQL: " + PG_WATCH_QUERY + ")",
        "mirrors: MEETSYNC_DB=$WORK/e2e/mirror.db, then MEETSYNC_DB=postgresql://postgres@"
        "127.0.0.1:PORT/e2e (meetsync.dev.pg_server, private, fsync=off); Redis: private, AOF",
    ]
    if wrk.available():
        result.commands += [
            "throughput load (ours, then the same against the verify-only route): "
            + " ".join(burst_args(0)).replace(":0/", ":PORT/"),
            "baseline: " + procs.shown(procs.baseline_command("bare-ingest", bare_port)),
        ]
    return result
