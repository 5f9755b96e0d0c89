"""Consularia sends no webhooks: every change reaches the mirror by a poll. One poll (reconcile
run) repairs every kind of drift a change between polls leaves: status, times, canceled (its
meeting too), gone (404) → deleted, new → created; a participant change, which no list page
shows, is fetched by the rotation within ceil(listed / rotation) polls."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from meetsync.providers.consularia.simulator import DETAIL, ConsulariaSim
from tests.providers.consularia.conftest import START, MakeWorld


def booked(sim: ConsulariaSim, hours: float = 3) -> str:
    return sim.create(start=START + timedelta(hours=hours)).appointment_id


def moved(sim: ConsulariaSim, appointment_id: str) -> None:
    sim.appointments[appointment_id]["start_date_time"] += timedelta(hours=2)


def longer(sim: ConsulariaSim, appointment_id: str) -> None:
    sim.appointments[appointment_id]["duration_minutes"] += 30


def created(sim: ConsulariaSim, _appointment_id: str) -> None:
    booked(sim, hours=5)


SCENARIOS: dict[str, tuple[Callable[[ConsulariaSim, str], object], set[str]]] = {
    "new": (created, {"missing"}),
    "active": (lambda sim, a: sim.set_status(a, "active"), {"status"}),
    "completed": (lambda sim, a: sim.set_status(a, "completed"), {"status"}),
    "canceled": (lambda sim, a: sim.set_status(a, "cancelled"), {"status", "meeting.status"}),
    "rescheduled": (moved, {"start_at", "end_at"}),
    "longer": (longer, {"end_at"}),
    "deleted": (lambda sim, a: sim.delete(a), {"status"}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_each_drift_kind_is_repaired_by_one_poll(
    name: str, sim: ConsulariaSim, world: MakeWorld
) -> None:
    w = world()
    appointment_id = booked(sim)
    first = await w.reconciler().run()
    assert (first.outcome, first.drift) == ("success", Counter(missing=1))
    change, fields = SCENARIOS[name]
    change(sim, appointment_id)
    assert w.mismatches() or name == "deleted"
    report = await w.reconciler().run()
    assert report.drift == Counter(fields)
    assert (report.drifted, report.repaired, report.outcome) == (1, 1, "success")
    w.assert_mirror_matches()
    if name == "deleted":
        assert report.gone == 1
        w.assert_gone([appointment_id])
    assert w.last_run()["errors"] == "[]"
    again = await w.reconciler().run()
    assert (again.drifted, again.outcome) == (0, "success")


async def test_a_poll_fetches_in_full_only_what_is_new_or_drifted(
    sim: ConsulariaSim, world: MakeWorld
) -> None:
    w = world()
    ids = [booked(sim, hours=h) for h in range(1, 11)]
    await w.reconciler().run()
    assert sorted(w.details_asked()) == sorted(ids)  # new: each fetched once
    sim.set_status(ids[3], "cancelled")
    asked = len(w.details_asked())
    report = await w.reconciler().run()
    assert w.details_asked()[asked:] == [ids[3]]
    assert report.drift == Counter(status=1, **{"meeting.status": 1})
    w.assert_mirror_matches()


async def test_all_kinds_at_once(sim: ConsulariaSim, world: MakeWorld) -> None:
    w = world()
    kept = booked(sim, hours=1)
    ids = {name: booked(sim, hours=2 + n) for n, name in enumerate(SCENARIOS)}
    await w.reconciler().run()
    expected: Counter[str] = Counter()
    for name, (change, fields) in SCENARIOS.items():
        change(sim, ids[name])
        expected.update(fields)
    report = await w.reconciler().run()
    assert report.drift == expected and report.gone == 1
    assert (report.drifted, report.repaired) == (len(SCENARIOS), len(SCENARIOS))
    w.assert_mirror_matches()
    assert kept in w.mirror([kept])


@pytest.mark.parametrize("rotation", [1, 3, 25])
async def test_a_participant_change_is_fetched_within_the_rotation_bound(
    rotation: int, sim: ConsulariaSim, world: MakeWorld
) -> None:
    w = world(rotation=rotation)
    ids = [booked(sim, hours=h) for h in range(1, 8)]
    await w.reconciler().run()
    changed = ids[4]
    sim.add_participant(changed)  # no list page shows it: only a detail fetch does
    bound = math.ceil(len(ids) / rotation)
    before = sim.calls[DETAIL]
    for _ in range(bound):
        asked = len(w.details_asked())
        report = await w.reconciler().run()
        assert report.drifted == 0  # nothing the mirror keeps has changed
        assert len(w.details_asked()) - asked == min(rotation, len(ids))
        if changed in w.details_asked()[asked:]:
            break
    else:
        pytest.fail(f"not fetched within {bound} polls")
    assert sim.calls[DETAIL] - before <= bound * rotation
