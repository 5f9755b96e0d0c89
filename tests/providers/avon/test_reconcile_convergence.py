"""Any Avon workload, any loss of hints, any appointments removed without a word: after one
reconcile run the mirror is Avon's truth, and a second run finds nothing to do."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.simulator import Chaos
from meetsync.simulator.delivery import plan
from tests.providers.avon.conftest import avon_world, new_sim


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    appointments=st.integers(3, 40),
    drop=st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0]),
    duplicate=st.sampled_from([0.0, 0.2]),
    reorder=st.booleans(),
    removed=st.integers(0, 3),
    page_size=st.sampled_from([3, 10, 100]),
)
def test_one_run_converges_any_workload_under_any_loss(
    seed: int, appointments: int, drop: float, duplicate: float, reorder: bool, removed: int,
    page_size: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(converge(Path(tmp) / "mirror.db", seed, appointments,
                             Chaos(drop=drop, duplicate=duplicate, reorder=reorder), removed,
                             page_size))


async def converge(db_path: Path, seed: int, appointments: int, chaos: Chaos, removed: int,
                   page_size: int) -> None:
    sim = new_sim(seed)
    heard, _, _ = plan(sim.play(appointments), chaos, random.Random(seed))
    gone = random.Random(seed).sample(sorted(sim.appointments), removed)
    async with avon_world(sim, db_path) as w:
        # Each hint that arrived was refetched right after its change (in arrival order).
        w.heard_deliveries(heard)
        held_gone = list(w.mirror(gone))
        for appointment_id in gone:  # removed at Avon, no webhook: 404 from now on
            del sim.appointments[appointment_id]
        report = await w.reconciler(page_size=page_size).run()
        assert report.outcome == "success", report.errors
        w.assert_mirror_matches()
        assert report.gone == len(held_gone)
        w.assert_gone(held_gone)
        again = await w.reconciler(page_size=page_size).run()
        assert (again.drifted, again.gone, again.outcome) == (0, 0, "success")
