"""Sweep: the reconciler (scope "all") over the simulator's appointments, against what the
sweep cannot avoid: one API call per page at the largest page size, and orjson-decoding those
pages (CPU).

The mirror first gets every webhook but each tenth, so the sweep has real drift to repair. The
simulator runs in another process (``bench.simserver``): only the reconciler's own CPU (its
HTTP client, parsing, comparing, repairing) is measured, as ``time.process_time``.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import orjson

from bench import procs, workload
from bench.common import Figure, Options, StageResult
from meetsync.providers.savvycal.client import MAX_PAGE_SIZE, RequestBudget, SavvyCalClient
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler, RunReport

CPU_TARGET = 3.0
TOKEN = "sim-token"  # the simulator's default
DROP_EVERY = 10


def seed_mirror(db_path: Path, appointments: int, start_iso: str) -> None:
    """The mirror as webhooks left it: every delivery but each tenth."""
    played = workload.deliveries(appointments, start=datetime.fromisoformat(start_iso))
    kept = [d for n, d in enumerate(played) if n % DROP_EVERY != DROP_EVERY - 1]
    store = open_store(db_path)
    events = workload.events(kept)
    for begin in range(0, len(events), 1000):
        store.apply(events[begin : begin + 1000])
    store.close()


async def reconcile(api: str, db_path: Path) -> tuple[RunReport, float]:
    store = StoreThread(lambda: open_store(db_path))
    budget = RequestBudget(10_000_000)
    try:
        async with SavvyCalClient(api, TOKEN, budget=budget) as client:
            started = time.process_time()
            report = await Reconciler(client, store, scope="all").run()
            cpu = time.process_time() - started
    finally:
        store.close()
    return report, cpu


def raw_pages(api: str, pages: int) -> list[bytes]:
    with httpx.Client(base_url=api, headers={"authorization": f"Bearer {TOKEN}"},
                      timeout=30) as http:
        return [
            http.get("/appointments", params={"page": page, "page_size": MAX_PAGE_SIZE,
                                              "order_by[]": "start_at_utc"}).content
            for page in range(1, pages + 1)
        ]


def decode_seconds(pages: list[bytes], repeats: int = 5) -> float:
    """CPU seconds to orjson-decode every page (median of ``repeats``)."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        for page in pages:
            orjson.loads(page)
        times.append(time.process_time() - started)
    return statistics.median(times)


def run(options: Options) -> StageResult:
    result = StageResult("sweep")
    work = options.workdir / "sweep"
    work.mkdir(parents=True, exist_ok=True)
    appointments = options.count(5000, 400)
    # The simulator's clock runs ahead ~1 s per change: start it far enough back that every
    # webhook is older than the sweep, or the sweep's snapshots would lose to them as stale.
    start = (workload.start_of_hour() - timedelta(hours=12)).isoformat()
    db_path = work / "mirror.db"
    seed_mirror(db_path, appointments, start)
    sim_args = [procs.PYTHON, "-m", "bench.simserver", "--appointments", str(appointments),
                "--start", start]
    with (work / "sim.log").open("ab") as log:
        sim = subprocess.Popen(sim_args, cwd=procs.ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=log)
    try:
        assert sim.stdout is not None
        root = sim.stdout.readline().decode().strip()
        if not root:
            raise RuntimeError("the simulator did not start; see sim.log")
        api = f"{root}/v1"
        report, our_cpu = asyncio.run(reconcile(api, db_path))
        pages_needed = math.ceil(report.appointments_seen / MAX_PAGE_SIZE)
        pages = raw_pages(api, pages_needed)
    finally:
        procs.stop(sim, close_stdin=True)
    decode_cpu = decode_seconds(pages)
    calls = Figure("sweep: API calls", "calls", report.api_calls, pages_needed + report.repaired)
    calls.target = "calls ≤ pages + repairs"
    calls.met = report.api_calls <= pages_needed + report.repaired
    calls.note = (f"{report.appointments_seen} appointments, {pages_needed} pages of "
                  f"{MAX_PAGE_SIZE}, {report.drifted} drifted, {report.repaired} repaired, "
                  f"outcome {report.outcome}; the baseline column is pages + repairs")
    cpu = Figure("sweep: CPU", "CPU ms", our_cpu * 1000, decode_cpu * 1000)
    cpu.target = f"ratio ≤ {CPU_TARGET:.0f}"
    cpu.met = cpu.ratio is not None and cpu.ratio <= CPU_TARGET
    cpu.note = (f"{report.seconds:.2f} s wall for the run; baseline: orjson.loads of the same "
                f"{len(pages)} pages ({sum(map(len, pages)) / 1e6:.1f} MB), median of 5")
    result.figures += [calls, cpu]
    result.commands += [
        "provider: " + procs.shown(sim_args),
        f"ours: Reconciler(SavvyCalClient(sim, budget=RequestBudget(10_000_000)), "
        f"scope='all').run() over a mirror given all webhooks but each {DROP_EVERY}th",
        f"baseline: GET /v1/appointments?page=N&page_size={MAX_PAGE_SIZE} for every page, "
        "then orjson.loads on each body (CPU only)",
    ]
    return result
