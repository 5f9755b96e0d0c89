"""The simulator's workload is deterministic, contract-shaped, strictly ordered and realistic."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim, played_until

START = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
APPT = re.compile(r"^appt_[A-Za-z0-9]{12}$")
AMTG = re.compile(r"^amtg_[A-Za-z0-9]{12}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MEETING_STATUSES = {
    "pending", "created", "failed", "skipped", "update_pending", "cancel_pending", "canceled",
}  # fmt: skip
MEETING_KEYS = {
    "id", "object", "status", "conferencing_provider", "external_meeting_id", "join_url",
    "host_url", "password", "error_message",
}  # fmt: skip


@pytest.fixture(scope="module")
def played() -> tuple[SavvyCalSim, list[Delivery]]:
    sim = SavvyCalSim(42, start=START)
    return sim, sim.play(300)


def test_same_seed_same_deliveries() -> None:
    first = SavvyCalSim(9, start=START).play(80)
    again = SavvyCalSim(9, start=START).play(80)
    other = SavvyCalSim(10, start=START).play(80)
    assert [d.body for d in first] == [d.body for d in again]
    assert [d.body for d in first] != [d.body for d in other]


def check_zoned(value: dict[str, Any]) -> None:
    assert value["object"] == "zoned_date_time"
    utc = datetime.fromisoformat(value["utc"])
    assert value["unix_ts"] == int(utc.timestamp())
    local = datetime.fromisoformat(value["local"])
    if local.tzinfo is not None:
        assert local == utc


def check_appointment(appointment: dict[str, Any]) -> None:
    assert APPT.match(appointment["id"])
    assert appointment["object"] == "appointment"
    assert appointment["status"] in {"scheduled", "canceled"}
    check_zoned(appointment["start_at"])
    check_zoned(appointment["end_at"])
    assert appointment["start_at"]["unix_ts"] < appointment["end_at"]["unix_ts"]
    assert STAMP.match(appointment["created_at"]) and STAMP.match(appointment["updated_at"])
    assert appointment["provider"]["id"].startswith("prov_")
    meeting = appointment["meeting"]
    if meeting is not None:
        assert set(meeting) == MEETING_KEYS
        assert AMTG.match(meeting["id"])
        assert meeting["object"] == "appointment_meeting"
        assert meeting["status"] in MEETING_STATUSES
        assert (meeting["error_message"] is not None) == (meeting["status"] == "failed")
        if meeting["status"] == "created":
            assert meeting["join_url"].startswith("https://")


def test_envelopes_match_the_contract(played: tuple[SavvyCalSim, list[Delivery]]) -> None:
    sim, deliveries = played
    for delivery in deliveries:
        envelope = delivery.envelope()
        assert set(envelope) == {"id", "account_id", "version", "created_at", "data"}
        assert envelope["id"] == delivery.event_id and envelope["id"].startswith("evt_")
        assert envelope["account_id"].startswith("acct_") and envelope["version"] == "1.0"
        assert STAMP.match(envelope["created_at"])
        data = envelope["data"]
        assert data["type"] == delivery.type and data["type"].startswith("appointment.")
        assert set(data) - {"previous_attributes"} == {"type", "object"}
        check_appointment(data["object"])
        assert data["object"]["updated_at"] == envelope["created_at"]
    for appointment in sim.appointments.values():
        check_appointment({k: v for k, v in appointment.items() if not k.startswith("_")})
    assert len({d.event_id for d in deliveries}) == len(deliveries)


def test_created_at_strictly_increases(played: tuple[SavvyCalSim, list[Delivery]]) -> None:
    stamps = [d.envelope()["created_at"] for d in played[1]]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_replacements_bring_new_meeting_ids(played: tuple[SavvyCalSim, list[Delivery]]) -> None:
    current: dict[str, str | None] = {}
    ever: set[str] = set()
    announced = unannounced = 0
    for delivery in played[1]:
        data = delivery.envelope()["data"]
        meeting = data["object"]["meeting"]
        meeting_id = meeting["id"] if meeting else None
        if data["type"] in ("appointment.meeting.replaced", "appointment.meeting.replace_failed"):
            assert meeting_id not in ever
            previous = data.get("previous_attributes")
            if previous is None:
                unannounced += 1
            else:
                announced += 1
                assert previous == {"meeting": {"id": current[delivery.appointment_id]}}
        elif delivery.appointment_id in current:
            assert meeting_id == current[delivery.appointment_id]
        current[delivery.appointment_id] = meeting_id
        if meeting_id:
            ever.add(meeting_id)
    assert announced > unannounced > 0


def test_the_workload_is_a_realistic_mix(played: tuple[SavvyCalSim, list[Delivery]]) -> None:
    sim, deliveries = played
    types = Counter(d.type for d in deliveries)
    assert types["appointment.created"] == 300 == len(sim.appointments)
    for kind in (
        "appointment.meeting.updated",
        "appointment.meeting.replaced",
        "appointment.meeting.create_failed",
        "appointment.rescheduled",
        "appointment.canceled",
    ):
        assert types[kind] > 0, kind
    rotated = [
        d for d in deliveries if d.type == "appointment.meeting.updated" and "host?token=" in
        (d.envelope()["data"]["object"]["meeting"]["host_url"] or "")
    ]  # fmt: skip
    assert rotated
    ends = [datetime.fromisoformat(a["end_at"]["utc"]) for a in sim.appointments.values()]
    starts = [datetime.fromisoformat(a["start_at"]["utc"]) for a in sim.appointments.values()]
    assert sum(s > START for s in starts) > 150
    assert any(s <= START < e for s, e in zip(starts, ends, strict=True))
    assert any(START - timedelta(hours=24) < e <= START for e in ends)
    assert any(e < START - timedelta(days=1) for e in ends)


def test_events_of_many_appointments_interleave(
    played: tuple[SavvyCalSim, list[Delivery]],
) -> None:
    switches = sum(
        a.appointment_id != b.appointment_id for a, b in zip(played[1], played[1][1:], strict=False)
    )
    assert switches > 0.8 * len(played[1])


def test_played_until_ends_the_providers_clock_at_the_given_moment() -> None:
    end = datetime(2030, 1, 1, 12, tzinfo=UTC)
    sim, played = played_until(end, 9, lambda sim: sim.play(80))
    assert sim.now == end and max(d.created_at for d in played) == end
    # The same lifecycles as from any other start, shifted in time.
    other = SavvyCalSim(9, start=START).play(80)
    assert [d.type for d in played] == [d.type for d in other]
    assert played[-1].created_at - played[0].created_at == (
        other[-1].created_at - other[0].created_at)
