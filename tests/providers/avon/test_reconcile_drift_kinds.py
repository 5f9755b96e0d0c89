"""One reconcile run repairs every kind of drift lost Avon hints leave: status, times, a new
Zoom meeting or link, video ↔ in person, gone (404) → deleted, never heard → created."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from meetsync.providers.avon.simulator import AvonSim
from meetsync.providers.avon.simulator.model import epoch_ms
from tests.providers.avon.conftest import START, AvonWorld, MakeWorld

MEETING = frozenset({"meeting_id", "meeting.status", "meeting.conferencing_provider",
                     "meeting.external_meeting_id", "meeting.join_url"})
NEW_MEETING = frozenset({"meeting_id", "meeting.external_meeting_id", "meeting.join_url"})



def booked(sim: AvonSim, *, video: bool = True) -> str:
    return sim.create(video=video, start_time=START + timedelta(hours=3)).appointment_id


def change_link(sim: AvonSim, appointment_id: str) -> None:
    """The same Zoom meeting, a new link (a new passcode): a change, so Avon's
    ``last_updated_at`` moves (snapshots are ordered by it)."""
    sim.now += timedelta(seconds=1)
    appointment = sim.appointments[appointment_id]
    appointment["video_call"]["join_url"] += "&changed=1"
    appointment["last_updated_at"] = epoch_ms(sim.now)


Change = Callable[[AvonSim, str], object]


@dataclass(frozen=True)
class Scenario:
    """One appointment made (by video or not), heard by the mirror (or not), then changed at
    Avon with every hint lost; ``fields`` the mirror is left wrong on."""

    change: Change
    fields: frozenset[str]
    video: bool = True
    heard: bool = True

    def play(self, sim: AvonSim, w: AvonWorld) -> str:
        appointment_id = booked(sim, video=self.video)
        if self.heard:
            w.heard(appointment_id)
        self.change(sim, appointment_id)
        return appointment_id


def _none(_sim: AvonSim, _appointment_id: str) -> None:
    return None


SCENARIOS: dict[str, Scenario] = {
    "never heard": Scenario(_none, frozenset({"missing"}), heard=False),
    "confirmed": Scenario(AvonSim.confirm, frozenset({"status"})),
    "started": Scenario(AvonSim.start, frozenset({"status"})),
    "canceled": Scenario(AvonSim.cancel, frozenset({"status", "meeting.status"})),
    "rescheduled": Scenario(lambda sim, a: sim.reschedule(a, by=timedelta(hours=2)),
                            frozenset({"start_at", "end_at"})),
    "new zoom meeting": Scenario(AvonSim.new_video_call, NEW_MEETING),
    "new join url": Scenario(change_link, frozenset({"meeting.join_url"})),
    "video → in person": Scenario(AvonSim.switch, MEETING),
    "in person → video": Scenario(AvonSim.switch, MEETING, video=False),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_each_drift_kind_is_repaired_by_one_run(
    name: str, sim: AvonSim, world: MakeWorld
) -> None:
    w = world()
    SCENARIOS[name].play(sim, w)
    assert w.mismatches()
    report = await w.reconciler().run()
    assert report.drift == Counter(SCENARIOS[name].fields)
    assert (report.drifted, report.repaired, report.outcome) == (1, 1, "success")
    w.assert_mirror_matches()
    run = w.last_run()
    assert (run["outcome"], run["repaired"], run["errors"]) == ("success", 1, "[]")
    again = await w.reconciler().run()
    assert (again.drifted, again.outcome) == (0, "success")


async def test_video_to_in_person_detaches_the_meeting_and_back_makes_a_new_one(
    sim: AvonSim, world: MakeWorld
) -> None:
    w = world()
    appointment_id = booked(sim)
    w.heard(appointment_id)
    first = w.mirror([appointment_id])[appointment_id]["meeting_id"]
    assert first is not None and first.startswith(f"{appointment_id}:")
    sim.switch(appointment_id)
    await w.reconciler().run()
    assert w.mirror([appointment_id])[appointment_id]["meeting_id"] is None
    sim.switch(appointment_id)
    await w.reconciler().run()
    second = w.mirror([appointment_id])[appointment_id]["meeting_id"]
    assert second not in (None, first)
    w.assert_mirror_matches()


async def test_all_kinds_at_once_with_small_pages(sim: AvonSim, world: MakeWorld) -> None:
    w = world()
    kept = booked(sim)
    w.heard(kept)  # in step: no drift
    expected: Counter[str] = Counter()
    for scenario in SCENARIOS.values():
        scenario.play(sim, w)
        expected.update(scenario.fields)
    report = await w.reconciler(page_size=3).run()
    assert report.appointments_seen == len(SCENARIOS) + 1
    assert (report.drifted, report.repaired, report.outcome) == (
        len(SCENARIOS), len(SCENARIOS), "success")
    assert report.drift == expected
    w.assert_mirror_matches()


async def test_an_appointment_gone_at_avon_is_deleted_with_no_meeting(
    sim: AvonSim, world: MakeWorld
) -> None:
    w = world()
    gone, other = booked(sim), booked(sim)
    w.heard(gone, other)
    held = w.mirror([gone])[gone]
    del sim.appointments[gone]  # removed at Avon; no webhook says so (404 from now on)
    report = await w.reconciler().run()
    assert (report.gone, report.drift, report.repaired, report.outcome) == (
        1, Counter(status=1), 1, "success")
    w.assert_gone([gone])
    row = w.mirror([gone])[gone]
    assert (row["start_at"], row["end_at"]) == (held["start_at"], held["end_at"])
    w.assert_mirror_matches()
    # Deleted appointments are not asked about again.
    asked = len(w.edge.requests)
    again = await w.reconciler().run()
    assert (again.gone, again.drifted) == (0, 0)
    assert all(r.url.path == "/v2/appointments" for r in w.edge.requests[asked:])
