"""Any workload, any webhook chaos: after one reconcile the mirror is the provider's truth."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.events import iso_utc
from meetsync.simulator import Chaos, ProviderSim
from meetsync.simulator.delivery import plan
from meetsync.store.mirror import CREDENTIAL_GRACE


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    appointments=st.integers(5, 40),
    drop=st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0]),
    duplicate=st.sampled_from([0.0, 0.1, 0.5]),
    reorder=st.booleans(),
    deleted=st.integers(0, 3),
    page_size=st.sampled_from([3, 10, 100]),
)
def test_one_run_converges_any_workload_under_any_chaos(
    kit: SimpleNamespace, seed: int, appointments: int, drop: float, duplicate: float,
    reorder: bool, deleted: int, page_size: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(converge(kit, Path(tmp) / "mirror.db", seed, appointments,
                             Chaos(drop=drop, duplicate=duplicate, reorder=reorder),
                             deleted, page_size))


async def converge(
    kit: SimpleNamespace, db_path: Path, seed: int, appointments: int, chaos: Chaos,
    deleted: int, page_size: int,
) -> None:
    sim = ProviderSim(seed, start=kit.START)
    order, _, _ = plan(sim.play(appointments), chaos, random.Random(seed))
    # Some appointments vanish at the provider with no webhook at all (a 404 from now on).
    gone = random.Random(seed).sample(sorted(sim.appointments), deleted)
    for appointment_id in gone:
        del sim.appointments[appointment_id]
    cutoff = iso_utc(sim.now - CREDENTIAL_GRACE)

    async with kit.Harness(sim, db_path) as h:
        h.apply(order)
        held_gone = [
            appointment_id for appointment_id, row in h.mirror(gone).items()
            if row["end_at"] > cutoff
        ]
        report = await h.reconciler(page_size=page_size).run()
        assert report.outcome == "success", report.errors
        h.assert_mirror_matches()
        assert report.gone == len(held_gone)
        assert all(row["status"] == "deleted" for row in h.mirror(held_gone).values())
        # Replacement chains hold: one current meeting per appointment, the rest superseded
        # and without credentials.
        current = {row["meeting_id"] for row in h.mirror(kit.truth(sim)).values()}
        for meeting in h.meetings().values():
            if meeting["replaced_by"] is not None:
                assert (meeting["host_url"], meeting["password"]) == (None, None)
                assert meeting["id"] not in current
        # Nothing is left for a second run to do.
        again = await h.reconciler(page_size=page_size).run()
        assert (again.drifted, again.gone) == (0, 0)
