"""A mirror written by release 0.1.0 (tests/data/mirror-0.1.0.sqlite3: 25 simulated appointments,
one pinned by an update dated 2926) upgrades in place, and the next reconcile heals the pin."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.store import open_store

from .conftest import Harness

FIXTURE = Path(__file__).parents[1] / "data" / "mirror-0.1.0.sqlite3"
PINNED = "appt_XxiXpU16hbu1"
BOGUS = "https://bogus.example/host?token=pinned"


async def test_a_pinned_row_from_release_0_1_is_healed_by_the_next_reconcile(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "mirror.db"
    shutil.copyfile(FIXTURE, db_path)
    # The provider the fixture was recorded from (same seed and start), and its truth now.
    sim = SavvyCalSim(11, start=datetime(2026, 12, 1, 15, tzinfo=UTC))
    sim.play(25)
    store = open_store(db_path, clock=lambda: sim.now)  # migrates
    pinned = store.current_meeting(PINNED)
    assert pinned is not None and pinned["host_url"] == BOGUS  # served until the reconcile
    # ...but no longer dated 2926: re-dated to when it was written.
    (latest,) = store.conn.execute("SELECT max(version_at) FROM appointments").fetchone()
    assert latest < 4_102_444_800_000_000  # 2100-01-01
    store.close()

    async with Harness(sim, db_path) as h:
        report = await h.reconciler().run()
        assert report.outcome == "success" and report.repaired == report.drifted >= 1
        h.assert_mirror_matches()
    store = open_store(db_path, readonly=True)
    healed = store.current_meeting(PINNED, now=sim.now)
    assert healed is not None and healed["host_url"] != BOGUS
    assert store.dead_letters()[0]["event_id"] == "evt_dead"  # the rest of the file is kept
    store.close()
