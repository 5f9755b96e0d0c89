"""End to end: a steady 1,000 signed POSTs/s through ``meetsync serve`` and ``meetsync worker``;
the time from each POST's due time until its event is visible in the mirror, and nothing lost.

A watcher thread polls the mirror's inbox (``events``, read-only, every 2 ms) and notes when
each event id appears; the paced load generator (another process) notes when each POST was due.
Both use the machine-wide monotonic clock.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import orjson

from bench import procs, workload
from bench.common import Figure, Options, StageResult, percentile
from meetsync.redis_server import RedisServer

RATE = 1000
P99_TARGET_MS = 100.0
POLL_SECONDS = 0.002
WATCH_QUERY = "SELECT rowid, id FROM events WHERE rowid > ? ORDER BY rowid"


class Watcher(threading.Thread):
    """Notes the monotonic time each event id first shows up in the mirror's inbox."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(daemon=True)
        self.db_path = db_path
        self.seen: dict[str, float] = {}
        self._stopping = threading.Event()
        self._last = 0

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            while not self._stopping.is_set():
                rows = conn.execute(WATCH_QUERY, (self._last,)).fetchall()
                now = time.monotonic()
                for rowid, event_id in rows:
                    self.seen.setdefault(event_id, now)
                    self._last = rowid
                time.sleep(POLL_SECONDS)
        finally:
            conn.close()


def _wait_for_mirror(db_path: Path, worker: subprocess.Popen[bytes], patience: float = 30.0
                     ) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError("meetsync worker exited at start-up; see its log")
        if db_path.exists():
            try:
                uri = f"file:{db_path}?mode=ro"
                with closing(sqlite3.connect(uri, uri=True, timeout=1)) as conn:
                    conn.execute("SELECT count(*) FROM events").fetchone()
                return
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    raise TimeoutError("the worker did not create the mirror")


def run(options: Options) -> StageResult:
    result = StageResult("end to end")
    work = options.workdir / "e2e"
    work.mkdir(parents=True, exist_ok=True)
    seconds = options.pick(30, 3)
    played = workload.deliveries(options.count(11_000, 1_200))
    needed = int(RATE * seconds)
    if len(played) < needed:
        raise RuntimeError(f"only {len(played)} deliveries for {needed} requests")
    posts = work / "posts.txt"
    workload.write_requests(posts, workload.signed_posts(played[:needed]))
    sent_file = work / "sent.json"
    db_path = work / "mirror.db"
    with RedisServer(work / "redis") as server:
        env = procs.meetsync_env(db_path, server.url)
        worker_args = [procs.PYTHON, "-m", "meetsync.cli", "worker"]
        with procs.server("meetsync", work / "serve.log", env) as (port, _), \
                procs.running(worker_args, work / "worker.log", env) as worker:
            _wait_for_mirror(db_path, worker)
            watcher = Watcher(db_path)
            watcher.start()
            load_args = [procs.PYTHON, "-m", "bench.loadgen", "--port", str(port), "--rate",
                         str(RATE), "--seconds", str(seconds), "--requests", str(posts),
                         "--out", str(sent_file)]
            subprocess.run(load_args, cwd=procs.ROOT, check=True, timeout=seconds + 120)
            sent = orjson.loads(sent_file.read_bytes())
            accepted = {played[index].event_id: due for index, due, _, status in sent
                        if status == 202}
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not accepted.keys() <= watcher.seen.keys():
                time.sleep(0.05)
            watcher.stop()
    latencies = [(watcher.seen[event_id] - due) * 1000 for event_id, due in accepted.items()
                 if event_id in watcher.seen]
    answers = [(answered - due) * 1000 for _, due, answered, _ in sent]
    lost = len(accepted) - len(latencies)
    refused = len(sent) - len(accepted)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    figure = Figure("end to end", "ms p99 (POST due → row visible)", p99, p50_ms=p50, p99_ms=p99)
    figure.target = f"p99 < {P99_TARGET_MS:.0f} ms, nothing lost"
    figure.met = p99 < P99_TARGET_MS and lost == 0 and refused == 0 and len(sent) == needed
    figure.note = (f"{len(sent)} POSTs at {RATE}/s for {seconds:.0f} s: {len(accepted)} answered "
                   f"202, {refused} not, {lost} accepted but never visible; max "
                   f"{max(latencies, default=0):.1f} ms; HTTP answer p50/p99 "
                   f"{percentile(answers, 50):.1f}/{percentile(answers, 99):.1f} ms")
    result.figures.append(figure)
    result.commands += [
        "web: " + procs.shown(procs.serve_command(port)),
        "worker: " + procs.shown(worker_args) + "  (arq worker, Applier inside, INFO logs)",
        "load: " + procs.shown(load_args),
        f"visible: a watcher thread polls the inbox every {POLL_SECONDS * 1000:.0f} ms: "
        + WATCH_QUERY,
    ]
    return result
