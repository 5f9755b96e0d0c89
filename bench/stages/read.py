"""Read: the meeting read API over HTTP against a bare Starlette JSON route, and in-process
``Store.current_meeting`` against a raw ``sqlite3`` primary-key SELECT, on the same mirror.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from bench import procs, workload, wrk
from bench.common import Figure, Options, StageResult
from meetsync.dev.redis_server import RedisServer
from meetsync.store import open_store

TARGET = 0.50
_RAW_SELECT = (
    "SELECT id, status, conferencing_provider, external_meeting_id, join_url, host_url, "
    "password, error_message, appointment_id, replaced_by, updated_at, version_at "
    "FROM meetings WHERE provider = 'savvycal' AND id = ?"
)


def build_mirror(db_path: Path, appointments: int) -> list[tuple[str, str]]:
    """A mirror from the simulator; returns (appointment id, current meeting id) pairs."""
    store = open_store(db_path)
    events = workload.events(workload.deliveries(appointments))
    for begin in range(0, len(events), 1000):
        store.apply(events[begin : begin + 1000])
    pairs = store.conn.execute(
        "SELECT id, meeting_id FROM appointments WHERE meeting_id IS NOT NULL ORDER BY id"
    ).fetchall()
    store.close()
    return [(a, m) for a, m in pairs]


def lookups_per_second(lookup: Callable[[str], object], keys: list[str], seconds: float) -> float:
    cycle = itertools.cycle(keys)
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(1000):
            if lookup(next(cycle)) is None:
                raise RuntimeError("a lookup found nothing")
        done += 1000
        if time.perf_counter() >= deadline:
            return done / (time.perf_counter() - started)


def in_process(db_path: Path, pairs: list[tuple[str, str]], seconds: float, rounds: int
               ) -> tuple[float, float]:
    store = open_store(db_path, readonly=True)
    raw = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    appointments = [a for a, _ in pairs]
    meetings = [m for _, m in pairs]
    ours = bare = 0.0
    for _ in range(rounds):
        bare += lookups_per_second(lambda key: raw.execute(_RAW_SELECT, (key,)).fetchone(),
                                   meetings, seconds)
        ours += lookups_per_second(store.current_meeting, appointments, seconds)
    store.close()
    raw.close()
    return ours / rounds, bare / rounds


def over_http(work: Path, db_path: Path, appointment_ids: list[str], options: Options,
              result: StageResult) -> Figure:
    reads = work / "reads.txt"
    workload.write_requests(reads, workload.meeting_reads(appointment_ids))
    seconds = options.pick(8, 1)
    totals = {"bare-read": [0, 0.0], "meetsync": [0, 0.0]}
    latency = (0.0, 0.0)
    with RedisServer(work / "redis", persistent=False) as server:
        env = procs.meetsync_env(db_path, server.url)
        with procs.server("bare-read", work / "bare.log", env) as (bare_port, _), \
                procs.server("meetsync", work / "serve.log", env) as (our_port, _):
            ports = {"bare-read": bare_port, "meetsync": our_port}
            commands = {name: wrk.command(f"http://127.0.0.1:{port}", reads, seconds=seconds)
                        for name, port in ports.items()}
            for port in ports.values():
                wrk.run(wrk.command(f"http://127.0.0.1:{port}", reads, seconds=1))
            for _ in range(options.count(2, 1)):
                for name, args in commands.items():
                    measured = wrk.run(args)
                    if measured.non_2xx or measured.errors:
                        result.notes.append(f"{name}: {measured.non_2xx} non-2xx answers, "
                                            f"{measured.errors} socket errors")
                    totals[name][0] += measured.requests
                    totals[name][1] += measured.seconds
                    if name == "meetsync":
                        latency = (measured.p50_ms, measured.p99_ms)
    result.commands += [
        "ours: " + procs.shown(procs.serve_command(our_port)),
        "baseline: " + procs.shown(procs.baseline_command("bare-read", bare_port)),
        "load (alternating): " + " ".join(commands["meetsync"]),
    ]
    figure = Figure("read: HTTP", "req/s", totals["meetsync"][0] / totals["meetsync"][1],
                    totals["bare-read"][0] / totals["bare-read"][1],
                    p50_ms=latency[0], p99_ms=latency[1])
    figure.note = f"GET /v1/appointments/{{id}}/meeting with a bearer token, " \
                  f"{len(appointment_ids)} appointments cycled"
    return figure.require_ratio_at_least(TARGET)


def run(options: Options) -> StageResult:
    result = StageResult("read")
    work = options.workdir / "read"
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / "mirror.db"
    pairs = build_mirror(db_path, options.count(4000, 300))
    if wrk.available():
        result.figures.append(over_http(work, db_path, [a for a, _ in pairs], options, result))
    else:
        result.notes.append("HTTP half skipped: wrk is not installed (apt-get install wrk)")
    ours, bare = in_process(db_path, pairs, options.pick(2, 0.3), options.count(2, 1))
    lookup = Figure("read: in-process", "lookups/s", ours, bare).require_ratio_at_least(TARGET)
    lookup.note = ("Store.current_meeting(appointment id) (join + view dict) vs "
                   "raw sqlite3 primary-key SELECT of the meeting row, read-only connections")
    result.figures.append(lookup)
    result.commands.append("in-process: one thread, cycling through every appointment with a "
                           "meeting; alternating baseline, ours")
    return result
