"""Any Consularia workload, polled at any moments (every change between two polls unseen but
the last): after one more poll the mirror is Consularia's truth in the window; a further poll
finds nothing to do."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.providers.consularia.simulator import changes
from tests.providers.consularia.conftest import consularia_world, new_sim


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    appointments=st.integers(3, 30),
    polls=st.lists(st.floats(0, 1), max_size=3),
    page_size=st.sampled_from([3, 10, 100]),
    rotation=st.sampled_from([0, 5, 25]),
)
def test_one_poll_converges_whatever_the_polls_before_missed(
    seed: int, appointments: int, polls: list[float], page_size: int, rotation: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(converge(Path(tmp) / "mirror.db", seed, appointments, polls, page_size,
                             rotation))


async def converge(db_path: Path, seed: int, appointments: int, polls: list[float],
                   page_size: int, rotation: int) -> None:
    sim = new_sim(seed)
    total = len(list(changes(new_sim(seed), appointments)))
    at = sorted({round(share * total) for share in polls})
    async with consularia_world(sim, db_path, page_size=page_size, rotation=rotation) as w:
        played = 0
        for n, _change in enumerate(changes(sim, appointments), 1):
            played = n
            if n in at:
                assert (await w.reconciler().run()).outcome == "success"
        assert played == total
        held = set(w.mirror(sim.deleted))
        report = await w.reconciler().run()
        assert report.outcome == "success", report.errors
        w.assert_mirror_matches()
        w.assert_gone(held)
        again = await w.reconciler().run()
        assert (again.drifted, again.gone, again.outcome) == (0, 0, "success")
