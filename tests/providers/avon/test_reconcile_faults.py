"""429s, 5xx and timeouts from Avon back off within the budget; a run cut short is ``partial``
(it keeps what it read), one that read nothing is ``failed``; never a false success."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import orjson

from meetsync.providers.avon.simulator import AvonSim
from tests.providers.avon.conftest import START, MakeWorld
from tests.providers.harness import Fault

PAGE = 4
LIST = "/v2/appointments"


def book_hourly(sim: AvonSim, n: int) -> list[str]:
    return [sim.create(start_time=START + timedelta(hours=hour)).appointment_id
            for hour in range(1, n + 1)]


def listing(request: httpx.Request) -> bool:
    return request.url.path == LIST


def on_pages(faults: dict[int, Fault]) -> Callable[[httpx.Request, int], Fault]:
    """Faults for the numbered list requests (from 1)."""
    seen: list[int] = []

    def fault(request: httpx.Request, _n: int) -> Fault:
        if not listing(request):
            return None
        seen.append(1)
        return faults.get(len(seen))

    return fault


async def test_429_waits_retry_after_and_the_run_succeeds(
    sim: AvonSim, world: MakeWorld
) -> None:
    book_hourly(sim, 10)
    w = world(faults=on_pages({2: 429}))
    report = await w.reconciler(page_size=PAGE).run()
    assert w.delays == [2.0]  # the edge's retry-after
    assert (report.outcome, report.pages, report.repaired) == ("success", 4, 10)
    assert w.last_run()["outcome"] == "success"
    w.assert_mirror_matches()


async def test_5xx_and_timeouts_back_off_and_the_run_succeeds(
    sim: AvonSim, world: MakeWorld
) -> None:
    book_hourly(sim, 10)
    w = world(faults=on_pages({1: 500, 2: "timeout", 4: 503}))
    report = await w.reconciler(page_size=PAGE).run()
    assert w.edge.answers_to(LIST) == [500, "timeout", 200, 503, 200, 200, 200]
    assert len(w.delays) == 3 and all(0 <= d <= 1.0 for d in w.delays)
    assert (report.outcome, report.repaired) == ("success", 10)
    w.assert_mirror_matches()


async def test_a_sweep_failing_midway_is_partial_and_keeps_what_it_read(
    sim: AvonSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 10)

    def page_3_down(request: httpx.Request, _n: int) -> Fault:
        return 500 if listing(request) and request.url.params["offset"] == "8" else None

    w = world(faults=page_3_down, max_attempts=3)
    report = await w.reconciler(page_size=PAGE).run()
    assert w.edge.answers_to(LIST) == [200, 200, 500, 500, 500]
    assert (report.outcome, report.pages, report.repaired) == ("partial", 2, 8)
    run = w.last_run()
    assert (run["outcome"], run["repaired"]) == ("partial", 8)
    assert orjson.loads(run["errors"]) == ["GET /v2/appointments: HTTP 500"]
    assert set(w.mirror(ids)) == set(ids[:8])


async def test_timeouts_to_the_end_are_partial_too(sim: AvonSim, world: MakeWorld) -> None:
    book_hourly(sim, 6)

    def page_2_times_out(request: httpx.Request, _n: int) -> Fault:
        return "timeout" if listing(request) and request.url.params["offset"] != "0" else None

    w = world(faults=page_2_times_out, max_attempts=2)
    report = await w.reconciler(page_size=PAGE).run()
    assert (report.outcome, report.pages, report.repaired) == ("partial", 1, 4)
    assert "timed out" in report.errors[0]


async def test_avon_down_from_the_start_is_a_failed_run_with_no_writes(
    sim: AvonSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 6)
    w = world(faults=lambda request, _n: 503 if listing(request) else None, max_attempts=3)
    w.heard(*ids[:3])
    sim.cancel(ids[0])  # lost hint: the mirror stays stale, untouched by a failed run
    before = w.mirror(ids)
    report = await w.reconciler(page_size=PAGE).run()
    assert (report.outcome, report.pages, report.drifted, report.repaired) == (
        "failed", 0, 0, 0)
    assert w.last_run()["outcome"] == "failed"
    assert w.mirror(ids) == before


async def test_a_failing_one_by_one_fetch_is_partial(sim: AvonSim, world: MakeWorld) -> None:
    ids = book_hourly(sim, 5)
    ended = sim.create(start_time=START - timedelta(hours=30)).appointment_id
    w = world(faults=lambda request, _n: 500 if request.url.path.endswith(ids[0]) else None,
              max_attempts=2)
    w.heard(*ids, ended)
    del sim.appointments[ids[0]]  # not listed any more: fetched one by one, which fails
    sim.cancel(ids[1])
    report = await w.reconciler(page_size=PAGE).run()
    assert (report.outcome, report.drifted, report.repaired) == ("partial", 1, 1)
    assert report.errors == [f"GET /v2/appointments/{ids[0]}: HTTP 500"]
    assert w.mirror([ids[1]])[ids[1]]["status"] == "canceled"
    assert w.mirror([ids[0]])[ids[0]]["status"] == "scheduled"  # unknown yet: kept
    assert w.last_run()["outcome"] == "partial"


async def test_persistent_429_is_never_a_tight_loop(sim: AvonSim, world: MakeWorld) -> None:
    book_hourly(sim, 3)
    w = world(faults=lambda request, _n: 429 if listing(request) else None, max_attempts=5)
    report = await w.reconciler().run()
    assert w.delays == [2.0] * 4
    assert w.edge.answers_to(LIST) == [429] * 5
    assert report.outcome == "failed"
