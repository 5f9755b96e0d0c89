"""Any workload, any webhook chaos, any provider clock: after one reconcile the mirror is the
provider's truth."""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.events import iso_utc
from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim
from meetsync.simulator import Chaos
from meetsync.simulator.delivery import plan
from meetsync.store.apply import CREDENTIAL_GRACE

TOLERANCE = timedelta(seconds=300)  # the receiver's default clock-skew tolerance

# How wrong a provider clock may be: a few seconds (within the receiver's tolerance), hours,
# or centuries, either way.
CLOCK_ERRORS = [timedelta(seconds=s) for s in (-7, 3, 299)] + [
    timedelta(hours=h) for h in (-30, 2, 25)] + [timedelta(days=d) for d in (-200 * 365, 900 * 365)]


def misdated(delivery: Delivery, error: timedelta) -> Delivery:
    """The same delivery from a provider whose clock is ``error`` off (fractional seconds and
    an offset, as ISO-8601 allows)."""
    envelope = orjson.loads(delivery.body)
    envelope["created_at"] = (delivery.created_at + error).astimezone(
        timezone(timedelta(hours=-5))).isoformat(timespec="microseconds")
    return replace(delivery, body=orjson.dumps(envelope))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    appointments=st.integers(5, 40),
    drop=st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0]),
    duplicate=st.sampled_from([0.0, 0.1, 0.5]),
    reorder=st.booleans(),
    deleted=st.integers(0, 3),
    page_size=st.sampled_from([3, 10, 100]),
    bad_clocks=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(CLOCK_ERRORS)),
                        max_size=8),
)
def test_one_run_converges_any_workload_under_any_chaos(
    kit: SimpleNamespace, seed: int, appointments: int, drop: float, duplicate: float,
    reorder: bool, deleted: int, page_size: int, bad_clocks: list[tuple[int, timedelta]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(converge(kit, Path(tmp) / "mirror.db", seed, appointments,
                             Chaos(drop=drop, duplicate=duplicate, reorder=reorder),
                             deleted, page_size, bad_clocks))


async def converge(
    kit: SimpleNamespace, db_path: Path, seed: int, appointments: int, chaos: Chaos,
    deleted: int, page_size: int, bad_clocks: list[tuple[int, timedelta]],
) -> None:
    sim = SavvyCalSim(seed, start=kit.START)
    order, _, _ = plan(sim.play(appointments), chaos, random.Random(seed))
    for at, error in bad_clocks:  # some deliveries dated by a clock far off, future or past
        if order:
            order[at % len(order)] = misdated(order[at % len(order)], error)
    # Some appointments vanish at the provider with no webhook at all (a 404 from now on).
    gone = random.Random(seed).sample(sorted(sim.appointments), deleted)
    for appointment_id in gone:
        del sim.appointments[appointment_id]

    async with kit.Harness(sim, db_path) as h:
        h.apply(order)
        # The reconcile runs once the skew tolerance has passed: within it, a delivery dated a
        # little ahead (trusted) is newer than a snapshot fetched now, by design.
        sim.now += TOLERANCE
        cutoff = iso_utc(sim.now - CREDENTIAL_GRACE)
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
