"""A sweep survives rows shifting between pages: it pages again when the count says it missed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim

MakeHarness = Callable[..., Any]
PAGE = 4


def book_hourly(sim: SavvyCalSim, n: int) -> tuple[list[str], dict[str, list[Delivery]]]:
    """``n`` appointments an hour apart (so the listing's order is known), meetings created."""
    ids: list[str] = []
    webhooks: dict[str, list[Delivery]] = {}
    for hour in range(1, n + 1):
        booked = sim.book(start_at=sim.start + timedelta(hours=hour), minutes=30)
        ids.append(booked.appointment_id)
        webhooks[booked.appointment_id] = [booked, sim.create_meeting(booked.appointment_id)]
    return ids, webhooks


def first_list_page(request: httpx.Request) -> bool:
    return request.url.path.endswith("/appointments") and request.url.params["page"] == "1"


async def test_a_stable_listing_is_swept_once(sim: SavvyCalSim, harness: MakeHarness) -> None:
    book_hourly(sim, 10)
    h = harness()
    report = await h.reconciler(page_size=PAGE).run()
    assert report.pages == len(h.edge.requests) == 3
    assert (report.appointments_seen, report.drifted, report.repaired) == (10, 10, 10)
    h.assert_mirror_matches()


async def test_a_row_inserted_before_the_cursor_is_found_by_paging_again(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    ids, webhooks = book_hourly(sim, 10)
    inserted: list[str] = []

    async def book_early(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and not inserted:
            # Sorts first: every row moves one place on, the new one is behind the cursor.
            early = sim.book(start_at=sim.start + timedelta(minutes=15), minutes=30)
            inserted.append(early.appointment_id)

    h = harness(after=book_early)
    h.apply(d for appointment_id in ids for d in webhooks[appointment_id])
    report = await h.reconciler(page_size=PAGE).run()
    assert report.appointments_seen == 11
    assert (report.drift["missing"], report.repaired, report.outcome) == (1, 1, "success")
    assert report.pages == len(h.edge.requests) == 3 + 3  # the first pass, then one more
    assert h.mirror(inserted)[inserted[0]]["status"] == "scheduled"
    h.assert_mirror_matches()


async def test_a_row_added_after_the_cursor_costs_no_second_pass(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    ids, webhooks = book_hourly(sim, 10)
    added: list[str] = []

    async def book_late(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and not added:
            added.append(sim.book(start_at=sim.start + timedelta(hours=20)).appointment_id)

    h = harness(after=book_late)
    h.apply(d for appointment_id in ids for d in webhooks[appointment_id])
    report = await h.reconciler(page_size=PAGE).run()
    assert report.pages == len(h.edge.requests) == 3
    assert (report.drift["missing"], report.repaired) == (1, 1)
    h.assert_mirror_matches()


async def test_a_row_slipping_past_a_removed_one_is_found_by_paging_again(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    ids, webhooks = book_hourly(sim, 10)
    slipped = ids[PAGE]  # first row of page 2, until the first row of page 1 goes

    async def remove_first(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and ids[0] in sim.appointments:
            del sim.appointments[ids[0]]

    h = harness(after=remove_first)
    # The mirror never heard of the row that slips, so only the listing can bring it in.
    h.apply(d for appointment_id in ids if appointment_id != slipped
            for d in webhooks[appointment_id])
    report = await h.reconciler(page_size=PAGE).run()
    assert report.drift["missing"] == 1
    assert report.pages == len(h.edge.requests) == 3 + 3
    assert h.mirror([slipped])[slipped]["meeting.status"] == "created"
    h.assert_mirror_matches()
    # The removed row was listed before it went: the next run finds it gone.
    again = await h.reconciler(page_size=PAGE).run()
    assert (again.gone, again.repaired) == (1, 1)
    assert h.mirror([ids[0]])[ids[0]]["status"] == "deleted"


async def test_a_provider_refusing_the_end_filter_gets_upcoming_plus_one_by_one(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    ids, webhooks = book_hourly(sim, 6)
    ended = sim.book(start_at=sim.start - timedelta(hours=5), minutes=30)  # ended today
    started = sim.book(start_at=sim.start - timedelta(minutes=10), minutes=60)  # in progress
    for booked in (ended, started):
        ids.append(booked.appointment_id)
        webhooks[booked.appointment_id] = [booked]
        sim.create_meeting(booked.appointment_id)  # lost

    def no_end_filter(request: httpx.Request, _n: int) -> int | None:
        return 400 if "end_at" in request.url.params.get("filters", "") else None

    h = harness(faults=no_end_filter)
    h.apply(d for appointment_id in ids for d in webhooks[appointment_id])
    report = await h.reconciler(page_size=PAGE).run()
    # one refused page, two pages of upcoming rows (in progress is upcoming: it has not
    # ended), then the held row that ended today, fetched on its own
    assert report.pages == 2 and h.edge.answered == [400, 200, 200, 200]
    assert h.edge.requests[-1].url.path.endswith(ended.appointment_id)
    assert (report.drifted, report.repaired, report.outcome) == (2, 2, "success")
    h.assert_mirror_matches()
