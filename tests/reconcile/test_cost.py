"""A window sweep costs one call per 100 appointments, plus one per held appointment not listed."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.simulator import Chaos
from meetsync.simulator.delivery import plan

MakeHarness = Callable[..., Any]


async def test_api_calls_per_thousand_appointments(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    order, _, _ = plan(sim.play(1000), Chaos(), random.Random(1))
    h = harness()
    h.apply(order)
    report = await h.reconciler().run()
    assert report.outcome == "success" and report.drifted > 0
    h.assert_mirror_matches()
    assert report.api_calls == report.pages == math.ceil(report.appointments_seen / 100)
    assert 1000 * report.api_calls / report.appointments_seen < 11  # 10.9 here (920 swept)

    # Appointments gone at the provider are not listed: each costs one fetch (a 404).
    gone = random.Random(1).sample(sorted(sim.appointments), 5)
    for appointment_id in gone:
        del sim.appointments[appointment_id]
    requests = len(h.edge.requests)
    again = await h.reconciler().run()
    assert again.gone > 0 and again.drifted == again.gone
    assert again.api_calls == again.pages + again.gone == len(h.edge.requests) - requests
