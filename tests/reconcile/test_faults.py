"""429s, 5xx and timeouts back off within the budget; each run's outcome is recorded honestly."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from meetsync.providers.savvycal.client import RequestBudget
from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim
from meetsync.simulator import ManualClock

MakeHarness = Callable[..., Any]
PAGE = 4


def book_hourly(sim: SavvyCalSim, n: int) -> tuple[list[str], list[Delivery]]:
    """``n`` upcoming appointments an hour apart, meetings created: listed in booking order."""
    ids: list[str] = []
    webhooks: list[Delivery] = []
    for hour in range(1, n + 1):
        booked = sim.book(start_at=sim.start + timedelta(hours=hour), minutes=30)
        ids.append(booked.appointment_id)
        webhooks += [booked, sim.create_meeting(booked.appointment_id)]
    return ids, webhooks


def on(requests: dict[int, int | str]) -> Callable[[httpx.Request, int], int | str | None]:
    """Faults for the numbered requests (from 1): a status or ``"timeout"``."""
    return lambda _request, n: requests.get(n)


async def test_429_waits_exactly_retry_after(sim: SavvyCalSim, harness: MakeHarness) -> None:
    book_hourly(sim, 10)
    h = harness(faults=on({2: 429}))
    report = await h.reconciler(page_size=PAGE).run()
    assert h.delays == [2.0]  # the edge's retry-after
    assert h.client.rate_limited == 1
    assert (report.outcome, report.pages, report.repaired) == ("success", 3, 10)
    run = h.last_run()
    assert (run["outcome"], run["api_calls"], run["pages"]) == ("success", 4, 3)
    h.assert_mirror_matches()


async def test_5xx_and_timeouts_back_off_with_jitter(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    book_hourly(sim, 10)
    h = harness(faults=on({1: 500, 2: "timeout", 4: 503}))
    report = await h.reconciler(page_size=PAGE).run()
    assert h.edge.answered == [500, "timeout", 200, 503, 200, 200]
    # full jitter under 0.5 s doubling: attempt 1 of page 1, attempt 2, attempt 1 of page 2
    first, second, third = h.delays
    assert 0 <= first <= 0.5 and 0 <= second <= 1.0 and 0 <= third <= 0.5
    assert (report.outcome, report.api_calls, report.repaired) == ("success", 6, 10)
    h.assert_mirror_matches()


async def test_a_sweep_failing_midway_is_partial_and_keeps_what_it_read(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    ids, _ = book_hourly(sim, 10)

    def page_3_down(request: httpx.Request, _n: int) -> int | None:
        return 500 if request.url.params.get("page") == "3" else None

    h = harness(faults=page_3_down, max_attempts=3)
    report = await h.reconciler(page_size=PAGE).run()
    # two pages, then page 3 tried max_attempts times; nothing more is asked
    assert h.edge.answered == [200, 200, 500, 500, 500]
    assert len(h.delays) == 2
    assert (report.outcome, report.repaired) == ("partial", 8)
    run = h.last_run()
    assert (run["outcome"], run["pages"], run["api_calls"], run["repaired"]) == (
        "partial", 2, 5, 8)
    assert orjson.loads(run["errors"]) == ["GET /appointments: HTTP 500"]
    assert run["finished_at"] is not None
    held = h.mirror(ids)
    assert set(held) == set(ids[:8])


async def test_a_provider_down_from_the_start_is_a_failed_run_with_no_writes(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    ids, webhooks = book_hourly(sim, 6)
    h = harness(faults=lambda _request, _n: 503, max_attempts=3)
    h.apply(webhooks[:3])  # a stale mirror, which must stay as it is
    before = h.mirror(ids)
    report = await h.reconciler(page_size=PAGE).run()
    assert len(h.edge.requests) == 3 and len(h.delays) == 2
    assert (report.outcome, report.pages, report.drifted, report.repaired) == ("failed", 0, 0, 0)
    assert h.last_run()["outcome"] == "failed"
    assert h.mirror(ids) == before


async def test_persistent_429_is_never_a_tight_loop(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    book_hourly(sim, 3)
    h = harness(faults=lambda _request, _n: 429, max_attempts=5)
    report = await h.reconciler().run()
    assert h.delays == [2.0] * 4
    assert len(h.edge.requests) == 5
    assert report.outcome == "failed" and h.last_run()["outcome"] == "failed"


async def test_a_failing_one_by_one_fetch_is_partial(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    _, webhooks = book_hourly(sim, 5)
    ended = sim.book(start_at=sim.start - timedelta(hours=3), minutes=30)
    sim.create_meeting(ended.appointment_id)  # lost

    def no_single_fetch(request: httpx.Request, _n: int) -> int | None:
        return 500 if not request.url.path.endswith("/appointments") else None

    def refuse_end_filter(request: httpx.Request, n: int) -> int | None:
        return 400 if "end_at" in request.url.params.get("filters", "") else no_single_fetch(
            request, n)

    h = harness(faults=refuse_end_filter, max_attempts=2)
    h.apply([*webhooks[:4], ended])  # two appointments stale, one ended today
    report = await h.reconciler().run()
    assert (report.outcome, report.drifted, report.repaired) == ("partial", 3, 3)
    assert report.errors == [f"GET /appointments/{ended.appointment_id}: HTTP 500"]
    assert h.last_run()["outcome"] == "partial"
    assert h.mirror([ended.appointment_id])[ended.appointment_id]["meeting.status"] == "pending"


async def test_the_budget_paces_a_sweep_under_the_provider_limit(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    book_hourly(sim, 20)
    clock = ManualClock()
    sent: list[float] = []

    def record(_request: httpx.Request, _n: int) -> None:
        sent.append(clock())

    budget = RequestBudget(5, clock=clock, sleep=clock.auto_sleep)
    h = harness(budget=budget, faults=record, rate_limit_per_minute=5, clock=clock,
                sleep=clock.auto_sleep)
    report = await h.reconciler(page_size=2).run()
    assert report.outcome == "success" and report.pages == len(sent) == 10
    assert h.client.rate_limited == 0 and h.delays == []
    assert all(later - earlier >= 60 for earlier, later in zip(sent, sent[5:], strict=False))
    assert budget.throttled_seconds == pytest.approx(60.0)
    h.assert_mirror_matches()


async def test_a_provider_stricter_than_the_budget_is_waited_out(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    book_hourly(sim, 14)
    clock = ManualClock()
    budget = RequestBudget(10, clock=clock, sleep=clock.auto_sleep)
    h = harness(budget=budget, rate_limit_per_minute=5, clock=clock, sleep=clock.auto_sleep)
    report = await h.reconciler(page_size=2).run()
    assert report.outcome == "success" and report.pages == 7
    assert h.client.rate_limited >= 1
    assert h.delays and all(delay >= 1 for delay in h.delays)  # the provider's retry-after
    assert report.api_calls == 7 + h.client.rate_limited
    h.assert_mirror_matches()


async def test_a_cancelled_run_is_recorded_as_failed(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    book_hourly(sim, 10)
    stuck = asyncio.Event()

    async def hang_on_page_2(request: httpx.Request, n: int) -> None:
        if n == 2:
            stuck.set()
            await asyncio.Event().wait()

    h = harness(after=hang_on_page_2)
    run = asyncio.create_task(h.reconciler(page_size=PAGE).run())
    await stuck.wait()
    run.cancel()  # arq's job timeout does this
    with pytest.raises(asyncio.CancelledError):
        await run
    recorded = h.last_run()
    assert (recorded["outcome"], recorded["pages"]) == ("failed", 1)
    assert recorded["finished_at"] is not None
    assert "CancelledError" in orjson.loads(recorded["errors"])[0]


async def test_a_repair_the_mirror_refuses_makes_the_run_partial(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    ids, _ = book_hourly(sim, 4)
    h = harness()
    conn = sqlite3.connect(h.db_path)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON appointments"
        f" WHEN NEW.id = '{ids[1]}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    conn.commit()
    conn.close()
    report = await h.reconciler().run()
    assert (report.outcome, report.drifted, report.repaired) == ("partial", 4, 3)
    assert len(report.errors) == 1 and report.errors[0].startswith(f"could not write {ids[1]}")
    assert h.last_run()["outcome"] == "partial"
    assert set(h.mirror(ids)) == set(ids) - {ids[1]}
