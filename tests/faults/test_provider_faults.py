"""Provider API down, slow or rate-limiting during a sweep: bounded backoff, the run recorded
failed or partial, and the next run picks up where it could not."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import orjson

from meetsync.providers.http import ClientOptions
from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.simulator import Faults
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler, RunReport
from tests.faults.conftest import API_TOKEN, events_of, mismatches, recent_sim

ATTEMPTS = 3


def seeded_mirror(db_path: Path, sim: SavvyCalSim) -> None:
    """A mirror that saw only the first half of the webhooks: plenty of drift to repair."""
    events = events_of(sim.history)
    store = open_store(db_path)
    store.apply(events[: len(events) // 2])
    store.close()


async def sweep(
    sim: SavvyCalSim, api: str, db_path: Path, *, client_timeout: float = 5.0,
    progress: Callable[[str], None] | None = None, page_size: int = 100,
) -> tuple[RunReport, SavvyCalClient, float]:
    store = StoreThread(lambda: open_store(db_path))
    client = SavvyCalClient(
        api, API_TOKEN, budget=RequestBudget(10_000), options=ClientOptions(
            max_attempts=ATTEMPTS, backoff_base=0.05, timeout=httpx.Timeout(client_timeout)),
    )
    started = time.monotonic()
    try:
        report = await Reconciler(client, store, page_size=page_size, progress=progress,
                                  clock=lambda: sim.now + timedelta(seconds=1)).run()
    finally:
        await client.aclose()
        store.close()
    return report, client, time.monotonic() - started


def recorded(db_path: Path, run_id: int) -> dict[str, object]:
    store = open_store(db_path, readonly=True)
    try:
        return next(run for run in store.runs() if run["id"] == run_id)
    finally:
        store.close()


async def test_api_down_fails_the_run_after_bounded_retries_and_the_next_run_repairs(
    db_path: Path, sim_api: Callable[[SavvyCalSim], str]
) -> None:
    sim = recent_sim(61)
    sim.play(40)
    seeded_mirror(db_path, sim)
    api = sim_api(sim)
    drift_before = mismatches(sim, db_path)

    sim.faults = Faults(error_rate=1.0)
    served = sim.requests_served
    down, client, _ = await sweep(sim, api, db_path)
    assert down.outcome == "failed"
    assert sim.requests_served - served == ATTEMPTS, "one call's retries, then the run stops"
    assert client.retries == ATTEMPTS - 1
    run = recorded(db_path, down.run_id)
    assert run["outcome"] == "failed" and "HTTP 500" in str(run["errors"])
    assert mismatches(sim, db_path) == drift_before

    sim.faults = Faults()
    healed, _, _ = await sweep(sim, api, db_path)
    assert healed.outcome == "success" and healed.repaired == healed.drifted > 0
    assert mismatches(sim, db_path) == {}


async def test_api_failing_mid_sweep_records_a_partial_run_keeping_what_it_repaired(
    db_path: Path, sim_api: Callable[[SavvyCalSim], str]
) -> None:
    sim = recent_sim(62)
    sim.play(60)
    seeded_mirror(db_path, sim)
    api = sim_api(sim)

    def outage_after_first_page(line: str) -> None:
        if line.startswith("sweep: page 1/"):
            sim.faults = Faults(error_rate=1.0)

    partial, _, _ = await sweep(sim, api, db_path, page_size=10,
                                progress=outage_after_first_page)
    assert partial.outcome == "partial"
    assert 0 < partial.appointments_seen <= 10
    run = recorded(db_path, partial.run_id)
    assert run["outcome"] == "partial"
    assert orjson.loads(str(run["errors"])), "the error that cut the run short is kept"
    assert mismatches(sim, db_path), "only the first page was compared"

    sim.faults = Faults()
    healed, _, _ = await sweep(sim, api, db_path, page_size=10)
    assert healed.outcome == "success"
    assert mismatches(sim, db_path) == {}


async def test_a_slow_api_times_out_boundedly_and_fails_the_run(
    db_path: Path, sim_api: Callable[[SavvyCalSim], str]
) -> None:
    sim = recent_sim(63)
    sim.play(20)
    seeded_mirror(db_path, sim)
    api = sim_api(sim)
    sim.faults = Faults(latency_ms=400)
    served = sim.requests_served
    slow, _, took = await sweep(sim, api, db_path, client_timeout=0.1)
    assert slow.outcome == "failed"
    assert sim.requests_served - served == ATTEMPTS
    assert "timed out" in slow.errors[0]
    assert took < ATTEMPTS * 0.1 + 2.0, "every attempt bounded by the client timeout"


async def test_rate_limiting_is_waited_out_as_told_then_fails_or_succeeds_the_run(
    db_path: Path, sim_api: Callable[[SavvyCalSim], str]
) -> None:
    sim = recent_sim(64)
    sim.play(30)
    seeded_mirror(db_path, sim)
    api = sim_api(sim)

    # Seed 4 answers 429 to the first six requests: the listing's retries run out.
    sim.faults = Faults(rate_limit_rate=0.5, retry_after=1, seed=4)
    limited, client, took = await sweep(sim, api, db_path)
    assert limited.outcome == "failed" and "HTTP 429" in limited.errors[0]
    assert client.rate_limited == ATTEMPTS
    # Each 429 but the last was waited out for its full retry-after: no tight loop.
    assert took >= (ATTEMPTS - 1) * 1.0

    # Seed 11: a 429 now and then; waited out, the run completes.
    sim.faults = Faults(rate_limit_rate=0.5, retry_after=1, seed=11)
    limited, client, took = await sweep(sim, api, db_path)
    assert limited.outcome == "success"
    assert client.rate_limited >= 1 and took >= client.rate_limited * 1.0
    assert mismatches(sim, db_path) == {}
