"""429s, 5xx and timeouts from Consularia back off within the budget; a poll cut short is
``partial`` (it keeps what it read), one that read nothing is ``failed``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import orjson

from meetsync.providers.consularia.simulator import ConsulariaSim
from tests.providers.consularia.conftest import START, MakeWorld
from tests.providers.harness import Fault

LIST = "/v1/appointments/"


def book_hourly(sim: ConsulariaSim, n: int) -> list[str]:
    return [sim.create(start=START + timedelta(hours=hour)).appointment_id
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


async def test_429_waits_retry_after_and_the_poll_succeeds(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    book_hourly(sim, 10)
    w = world(faults=on_pages({2: 429}))
    report = await w.reconciler().run()
    assert w.delays == [2.0]
    assert (report.outcome, report.pages, report.repaired) == ("success", 3, 10)
    w.assert_mirror_matches()


async def test_5xx_and_timeouts_back_off_and_the_poll_succeeds(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    book_hourly(sim, 10)
    w = world(faults=on_pages({1: 500, 2: "timeout", 4: 503}))
    report = await w.reconciler().run()
    assert w.edge.answers_to(LIST) == [500, "timeout", 200, 503, 200, 200]
    assert len(w.delays) == 3
    assert (report.outcome, report.repaired) == ("success", 10)
    w.assert_mirror_matches()


async def test_a_sweep_failing_midway_is_partial_not_failed(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 10)
    w = world()
    await w.reconciler().run()
    sim.set_status(ids[0], "active")  # listed on page 1
    sim.set_status(ids[9], "active")  # on page 3
    before = w.mirror(ids)

    def page_3_down(request: httpx.Request, _n: int) -> Fault:
        return 500 if listing(request) and request.url.params["page"] == "3" else None

    w.edge.faults = page_3_down
    report = await w.reconciler().run()
    assert w.edge.answers_to(LIST)[-6:] == [200, 200, 500, 500, 500, 500]
    # List rows are incomplete: a sweep cut short fetches none of what it listed (the next
    # poll does), and says so: partial, never a success.
    assert (report.outcome, report.pages, report.repaired) == ("partial", 2, 0)
    run = w.last_run()
    assert run["outcome"] == "partial"
    assert orjson.loads(run["errors"]) == ["GET /appointments/: HTTP 500"]
    assert w.mirror(ids) == before
    w.edge.faults = lambda _request, _n: None
    again = await w.reconciler().run()
    assert (again.outcome, again.repaired) == ("success", 2)
    w.assert_mirror_matches()


async def test_consularia_down_from_the_start_is_a_failed_poll_with_no_writes(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 6)
    w = world()
    await w.reconciler().run()
    sim.set_status(ids[0], "cancelled")
    before = w.mirror(ids)
    w.edge.faults = lambda request, _n: "timeout" if listing(request) else None
    report = await w.reconciler().run()
    assert (report.outcome, report.pages, report.drifted) == ("failed", 0, 0)
    assert w.last_run()["outcome"] == "failed"
    assert w.mirror(ids) == before


async def test_a_failing_detail_fetch_is_partial(sim: ConsulariaSim, world: MakeWorld) -> None:
    ids = book_hourly(sim, 5)
    w = world(max_attempts=2)
    await w.reconciler().run()
    sim.set_status(ids[1], "active")
    sim.set_status(ids[3], "cancelled")
    w.edge.faults = lambda request, _n: 500 if ids[3] in request.url.path else None
    report = await w.reconciler().run()
    assert report.outcome == "partial" and len(report.errors) == 1
    assert w.mirror([ids[1]])[ids[1]]["status"] == "active"  # fetched first: repaired
    assert w.mirror([ids[3]])[ids[3]]["status"] == "scheduled"  # not read: kept, next poll
    w.edge.faults = lambda _request, _n: None
    again = await w.reconciler().run()
    assert again.outcome == "success"
    w.assert_mirror_matches()
