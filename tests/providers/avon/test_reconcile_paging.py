"""Avon pages by ``limit``/``offset`` and gives no total: rows shifting between pages are dropped
when served twice, and a held row skipped by the shift is still fetched in the same run (the
reconciler asks for what the mirror holds that no page listed); a new row skipped is listed by
the next run."""

from __future__ import annotations

from datetime import timedelta

import httpx

from meetsync.providers.avon.simulator import AvonSim
from tests.providers.avon.conftest import START, MakeWorld

PAGE = 4


def book_hourly(sim: AvonSim, n: int) -> list[str]:
    """``n`` appointments an hour apart: the listing's order (start time) is known."""
    return [sim.create(start_time=START + timedelta(hours=hour)).appointment_id
            for hour in range(1, n + 1)]


def first_list_page(request: httpx.Request) -> bool:
    return (request.url.path == "/v2/appointments"
            and request.url.params.get("offset") == "0")


async def test_a_stable_listing_is_swept_page_by_page(sim: AvonSim, world: MakeWorld) -> None:
    book_hourly(sim, 10)
    w = world()
    report = await w.reconciler(page_size=PAGE).run()
    # 4 + 4 + 2, then an empty page: a short page may be the server's cap, not the end
    assert report.pages == 4
    assert w.edge.answers_to("/v2/appointments") == [200] * 4
    assert (report.appointments_seen, report.drifted, report.repaired) == (10, 10, 10)
    w.assert_mirror_matches()


async def test_a_row_inserted_before_the_cursor_shifts_the_pages_and_waits_a_run(
    sim: AvonSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 10)
    inserted: list[str] = []

    async def book_early(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and not inserted:
            # Sorts first: every row moves one place on; page 2 serves page 1's last again.
            inserted.append(sim.create(start_time=START + timedelta(minutes=15)).appointment_id)

    w = world(after=book_early)
    w.heard(*ids)
    sim.reschedule(ids[-1], by=timedelta(minutes=30))  # lost hint
    report = await w.reconciler(page_size=PAGE).run()
    assert report.outcome == "success" and report.errors == []
    # Every held row once (page 1's last was served again on page 2, and dropped); the new
    # row went in behind the cursor: no page of this run lists it.
    assert report.appointments_seen == 10
    assert report.drift == {"start_at": 1, "end_at": 1}
    assert w.mismatches() == {inserted[0]: ["missing"]}
    again = await w.reconciler(page_size=PAGE).run()
    assert again.drift == {"missing": 1}
    w.assert_mirror_matches()


async def test_a_held_row_slipping_past_a_removed_one_is_fetched_in_the_same_run(
    sim: AvonSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 10)
    slipped = ids[PAGE]  # first row of page 2, until the first row of page 1 goes

    async def remove_first(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and ids[0] in sim.appointments:
            del sim.appointments[ids[0]]

    w = world(after=remove_first)
    w.heard(*ids)
    sim.cancel(slipped)  # lost hint: only the reconcile can bring it
    report = await w.reconciler(page_size=PAGE).run()
    fetched = [r.url.path for r in w.edge.requests if r.url.path.startswith("/v2/appointments/")]
    # The skipped row is on no page: the mirror holds it, so it is fetched on its own.
    assert fetched == [f"/v2/appointments/{slipped}"]
    assert (report.outcome, report.drift["status"], report.gone) == ("success", 1, 0)
    assert w.mirror([slipped])[slipped]["status"] == "canceled"
    w.assert_mirror_matches()
    # The removed row was listed before it went: the next run finds it gone.
    again = await w.reconciler(page_size=PAGE).run()
    assert (again.gone, again.repaired) == (1, 1)
    w.assert_gone([ids[0]])


async def test_a_new_row_skipped_by_a_shift_is_listed_by_the_next_run(
    sim: AvonSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 10)
    shifted: list[str] = []

    async def shift(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and not shifted:
            del sim.appointments[ids[0]]
            shifted.append(ids[0])

    w = world(after=shift)
    w.heard(*[a for a in ids if a != ids[PAGE]])  # the mirror never heard of ids[PAGE]
    first = await w.reconciler(page_size=PAGE).run()
    assert first.outcome == "success"
    assert ids[PAGE] not in w.mirror([ids[PAGE]])  # skipped: new, and on no page
    second = await w.reconciler(page_size=PAGE).run()
    assert second.drift["missing"] == 1
    w.assert_mirror_matches()
    w.assert_gone(shifted)
