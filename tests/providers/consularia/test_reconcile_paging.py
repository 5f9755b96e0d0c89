"""Consularia pages by page number with a ``count``: when the count moves during a pass (rows
created or deleted between pages) the sweep pages again from page 1, so a row that slipped
between pages is still listed in the same run; rows served twice are dropped."""

from __future__ import annotations

from datetime import timedelta

import httpx

from meetsync.providers.consularia.simulator import ConsulariaSim
from tests.providers.consularia.conftest import PAGE, START, MakeWorld


def book_hourly(sim: ConsulariaSim, n: int) -> list[str]:
    return [sim.create(start=START + timedelta(hours=hour)).appointment_id
            for hour in range(1, n + 1)]


def first_list_page(request: httpx.Request) -> bool:
    return request.url.path == "/v1/appointments/" and request.url.params.get("page") == "1"


def list_requests(w: object) -> int:
    return sum(r.url.path == "/v1/appointments/" for r in w.edge.requests)  # type: ignore[attr-defined]


async def test_a_stable_listing_is_swept_once(sim: ConsulariaSim, world: MakeWorld) -> None:
    book_hourly(sim, 10)
    w = world()
    report = await w.reconciler().run()
    assert report.pages == list_requests(w) == 3  # 4 + 4 + 2, and next says it is the last
    assert (report.appointments_seen, report.drifted, report.repaired) == (10, 10, 10)
    w.assert_mirror_matches()


async def test_a_row_inserted_before_the_cursor_is_found_by_paging_again(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    book_hourly(sim, 10)
    inserted: list[str] = []

    async def book_early(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and not inserted:
            # Sorts first: every row moves one place on; the count changes.
            inserted.append(sim.create(start=START + timedelta(minutes=15)).appointment_id)

    w = world(after=book_early)
    report = await w.reconciler().run()
    assert report.appointments_seen == 11 and report.outcome == "success"
    assert report.drift["missing"] == 11
    assert list_requests(w) == 3 + 3  # the first pass, then one more
    w.assert_mirror_matches()


async def test_a_row_slipping_past_a_removed_one_is_found_by_paging_again(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 10)
    slipped = ids[PAGE]  # first row of page 2, until the first row of page 1 goes
    w = world()
    await w.reconciler().run()
    sim.set_status(slipped, "cancelled")  # only a listing of it (or a fetch) can tell
    listed = list_requests(w)

    async def remove_first(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and ids[0] in sim.appointments:
            sim.delete(ids[0])

    w.edge.after = remove_first
    report = await w.reconciler().run()
    assert w.mirror([slipped])[slipped]["status"] == "canceled"
    assert list_requests(w) - listed == 3 + 3
    assert report.outcome == "success"
    # The removed row was listed before it went: the next poll finds it gone.
    again = await w.reconciler().run()
    assert (again.gone, again.repaired) == (1, 1)
    w.assert_gone([ids[0]])
    w.assert_mirror_matches()


async def test_rows_deleted_under_the_pass_of_a_held_one_are_fetched_and_found_gone(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    ids = book_hourly(sim, 10)
    w = world()
    await w.reconciler().run()

    async def remove_late(request: httpx.Request, _n: int) -> None:
        if first_list_page(request) and ids[-1] in sim.appointments:
            sim.delete(ids[-1])  # on page 3, not yet served

    w.edge.after = remove_late
    report = await w.reconciler().run()
    assert (report.gone, report.outcome) == (1, "success")
    assert w.details_asked()[-1] == ids[-1]  # held, on no page: fetched, 404
    w.assert_gone([ids[-1]])
    w.assert_mirror_matches()
