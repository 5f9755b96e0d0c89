"""A webhook for a change made while a request was in flight beats that request's stale answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from meetsync.providers.savvycal.simulator import SavvyCalSim

MakeHarness = Callable[..., Any]


@pytest.mark.parametrize("path", ["listed", "fetched one by one"])
async def test_a_change_during_a_request_keeps_its_webhook(
    path: str, sim: SavvyCalSim, harness: MakeHarness
) -> None:
    hours = 3 if path == "listed" else -5  # ended today: fetched on its own when not listed
    booked = sim.book(start_at=sim.start + timedelta(hours=hours), minutes=30)
    appointment_id = booked.appointment_id
    created = sim.create_meeting(appointment_id)
    watched = "/appointments" if path == "listed" else f"/appointments/{appointment_id}"

    def refuse_end_filter(request: httpx.Request, _n: int) -> int | None:
        refused = path != "listed" and "end_at" in request.url.params.get("filters", "")
        return 400 if refused else None

    async def cancel_meanwhile(request: httpx.Request, _n: int) -> None:
        if request.url.path.endswith(watched) and sim.appointments[appointment_id][
                "status"] == "scheduled":
            # The answer is on its way; the appointment is canceled and the worker applies
            # the webhook before the answer lands.
            h.apply([sim.cancel(appointment_id)])
            sim.now += timedelta(milliseconds=40)

    h = harness(after=cancel_meanwhile, faults=refuse_end_filter)
    h.apply([booked, created])
    report = await h.reconciler().run()
    # The stale answer looked like drift, and lost to the newer webhook.
    assert (report.drifted, report.repaired) == (1, 0)
    assert h.mirror([appointment_id])[appointment_id]["status"] == "canceled"
    h.assert_mirror_matches()
