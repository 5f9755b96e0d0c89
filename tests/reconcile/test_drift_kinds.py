"""One reconcile run repairs every kind of drift webhooks leave: missed, stale, replaced, gone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim
from meetsync.store import open_store

MakeHarness = Callable[..., Any]

# A scenario plays one appointment's life at the provider and returns the webhooks the mirror
# got; the rest were lost. It names the fields the mirror is left wrong on.
Scenario = Callable[[SavvyCalSim], list[Delivery]]
CREATED = {"meeting.status", "meeting.external_meeting_id", "meeting.join_url",
           "meeting.host_url", "meeting.password"}


def booked(sim: SavvyCalSim) -> tuple[str, list[Delivery]]:
    first = sim.book(start_at=sim.start + timedelta(hours=3), minutes=30)
    return first.appointment_id, [first, sim.create_meeting(first.appointment_id)]


def never_seen(sim: SavvyCalSim) -> list[Delivery]:
    booked(sim)
    return []


def stale_meeting_status(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    got.append(sim.reschedule(appointment_id))
    sim.create_meeting(appointment_id)  # update_pending → created: lost
    return got


def stale_host_url(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    sim.rotate_host_url(appointment_id)
    return got


def stale_join_url(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    sim.appointments[appointment_id]["meeting"]["join_url"] = "https://zoom.us/j/1234567890"
    return got


def stale_password(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    sim.appointments[appointment_id]["meeting"]["password"] = "n3wpwd"
    return got


def missed_failure(sim: SavvyCalSim) -> list[Delivery]:
    first = sim.book(start_at=sim.start + timedelta(hours=3))
    sim.fail_meeting(first.appointment_id)
    return [first]


def missed_reschedule(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    sim.reschedule(appointment_id, start_at=sim.start + timedelta(days=2))
    return got


def missed_replacement(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    got.append(sim.reschedule(appointment_id))
    sim.replace_meeting(appointment_id)
    sim.create_meeting(appointment_id)
    return got


def missed_cancel(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    sim.cancel(appointment_id)
    sim.confirm_cancel(appointment_id)
    return got


def meeting_removed(sim: SavvyCalSim) -> list[Delivery]:
    appointment_id, got = booked(sim)
    sim.appointments[appointment_id]["meeting"] = None  # the provider says: no meeting now
    return got


SCENARIOS: dict[str, tuple[Scenario, set[str]]] = {
    "never seen": (never_seen, {"missing"}),
    "meeting status": (stale_meeting_status, {"meeting.status"}),
    "host_url": (stale_host_url, {"meeting.host_url"}),
    "join_url": (stale_join_url, {"meeting.join_url"}),
    "password": (stale_password, {"meeting.password"}),
    "create failed": (missed_failure, {"meeting.status", "meeting.error_message"}),
    "rescheduled": (missed_reschedule, {"start_at", "end_at", "meeting.status"}),
    "replaced": (missed_replacement, CREATED | {"meeting_id"}),
    "canceled": (missed_cancel, {"status", "meeting.status"}),
    "meeting removed": (meeting_removed, CREATED | {"meeting_id", "meeting.conferencing_provider"}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_each_drift_kind_is_repaired_by_one_run(
    name: str, sim: SavvyCalSim, harness: MakeHarness
) -> None:
    scenario, fields = SCENARIOS[name]
    h = harness()
    h.apply(scenario(sim))
    report = await h.reconciler().run()
    assert report.drift == Counter(fields)
    assert (report.drifted, report.repaired, report.outcome) == (1, 1, "success")
    h.assert_mirror_matches()
    run = h.last_run()
    assert (run["outcome"], run["repaired"], run["errors"]) == ("success", 1, "[]")


async def test_a_removed_meeting_is_detached_once_and_for_good(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    h = harness()
    h.apply(meeting_removed(sim))
    (appointment_id,) = sim.appointments
    held = h.mirror([appointment_id])[appointment_id]
    assert (await h.reconciler().run()).repaired == 1
    assert h.mirror([appointment_id])[appointment_id]["meeting_id"] is None
    old = h.meetings()[held["meeting_id"]]  # kept, with no live credential
    assert (old["host_url"], old["password"]) == (None, None)
    again = await h.reconciler().run()
    assert (again.drifted, again.repaired) == (0, 0)


async def test_all_kinds_at_once(sim: SavvyCalSim, harness: MakeHarness) -> None:
    h = harness()
    kept = sim.book(start_at=sim.start + timedelta(hours=5))  # in step: no drift
    got = [kept]
    for scenario, _fields in SCENARIOS.values():
        got += scenario(sim)
    h.apply(got)
    report = await h.reconciler(page_size=4).run()
    assert report.appointments_seen == len(SCENARIOS) + 1
    assert (report.drifted, report.repaired) == (len(SCENARIOS), len(SCENARIOS))
    assert report.drift == sum((Counter(fields) for _, fields in SCENARIOS.values()), Counter())
    h.assert_mirror_matches()


async def test_a_missed_replacement_supersedes_the_old_meeting(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    h = harness()
    h.apply(missed_replacement(sim))
    appointment_id = next(iter(sim.appointments))
    old = h.mirror([appointment_id])[appointment_id]["meeting_id"]
    assert h.meetings()[old]["host_url"] is not None
    new = sim.appointments[appointment_id]["meeting"]["id"]
    await h.reconciler().run()
    meetings = h.meetings()
    assert meetings[old]["replaced_by"] == new
    assert (meetings[old]["host_url"], meetings[old]["password"]) == (None, None)
    assert meetings[new]["replaced_by"] is None
    assert meetings[new]["host_url"] == sim.appointments[appointment_id]["meeting"]["host_url"]
    store = open_store(h.db_path, readonly=True)
    assert store.current_meeting(appointment_id)["id"] == new  # type: ignore[index]
    assert store.latest_meeting(old)["id"] == new  # type: ignore[index]
    store.close()


async def test_an_appointment_gone_at_the_provider_is_deleted(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    h = harness()
    appointment_id, got = booked(sim)
    _other, more = booked(sim)
    h.apply(got + more)
    held = h.mirror([appointment_id])[appointment_id]
    del sim.appointments[appointment_id]  # deleted, and no webhook says so
    report = await h.reconciler().run()
    assert (report.gone, report.drift, report.repaired) == (1, Counter(status=1), 1)
    store = open_store(h.db_path, readonly=True)
    row = store.appointment(appointment_id)
    assert row is not None and row["status"] == "deleted"
    # It keeps its times, so its meeting's credentials still expire 24 h after its end.
    assert (row["start_at"], row["end_at"]) == (held["start_at"], held["end_at"])
    store.close()
    h.assert_mirror_matches()
    # A second run has nothing left to fetch: deleted appointments are not asked about again.
    requests = len(h.edge.requests)
    again = await h.reconciler().run()
    assert (again.gone, again.drifted, len(h.edge.requests) - requests) == (0, 0, 1)
    store = open_store(h.db_path)
    store.purge_expired_credentials(now=sim.start + timedelta(days=2))
    store.close()
    assert h.meetings()[held["meeting_id"]]["host_url"] is None


async def test_a_full_sweep_never_writes_back_purged_credentials(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    h = harness()
    old = sim.book(start_at=sim.start - timedelta(days=3), minutes=30)
    got = [old, sim.create_meeting(old.appointment_id)]
    h.apply(got)
    meeting_id = sim.appointments[old.appointment_id]["meeting"]["id"]
    # Ended over 24 h ago: its credentials were dead on arrival and never written.
    assert (h.meetings()[meeting_id]["host_url"], h.meetings()[meeting_id]["password"]) == (
        None, None)
    sim.cancel(old.appointment_id)  # lost; the provider still shows the old credentials
    assert sim.appointments[old.appointment_id]["meeting"]["host_url"] is not None
    window = await h.reconciler().run()
    assert window.appointments_seen == 0  # ended over 24 h ago: outside the window
    report = await h.reconciler(scope="all").run()
    assert report.drift == Counter({"status": 1, "meeting.status": 1})
    assert report.repaired == 1
    held = h.mirror([old.appointment_id])[old.appointment_id]
    assert (held["status"], held["meeting.status"]) == ("canceled", "cancel_pending")
    assert (held["meeting.host_url"], held["meeting.password"]) == (None, None)
