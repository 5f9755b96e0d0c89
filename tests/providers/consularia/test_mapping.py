"""Consularia appointments (list items and details) map to Events: times, status, participants."""

from __future__ import annotations

from typing import Any

import pytest

from meetsync.events import Participant
from meetsync.providers import EnvelopeError
from meetsync.providers.consularia.mapping import (
    appointment_event,
    appointment_status,
    updated_at,
)

ID = "497f6eca-6276-4993-bfeb-53cbbbba6f08"


def detail(**extra: Any) -> dict[str, Any]:
    return {
        "id": ID, "title": "Consultation", "start_date_time": "2019-08-24T14:15:22Z",
        "duration_minutes": 15, "status": "scheduled",
        "config": {"breakout_rooms_enabled": False, "chat_enabled": True},
        "participants": [
            {"id": "p1", "unique_id": "admin@example.com", "display_name": "Admin User",
             "role": "moderator"},
            {"id": "p2", "unique_id": "user1@example.com", "display_name": None,
             "role": "participant"},
        ],
        "created_at": "2019-08-24T14:15:22Z", "updated_at": "2019-08-24T14:20:00Z", **extra,
    }


def list_item(**extra: Any) -> dict[str, Any]:
    return {"id": ID, "title": "Consultation", "start_date_time": "2019-08-24T14:15:22Z",
            "duration_minutes": 15, "status": "scheduled", "participant_count": 2,
            "organization_name": "Org", "created_at": "2019-08-24T14:15:22Z", **extra}


def event(obj: object, *, detail: bool = True) -> Any:
    return appointment_event(obj, event_id="e1", type="refetch", occurred_at=123,
                             account="acme", detail=detail)


def test_detail_maps_times_status_participants_and_meeting() -> None:
    found = event(detail())
    assert (found.appointment_id, found.provider, found.account, found.occurred_at) == (
        ID, "consularia", "acme", 123)
    assert (found.start_at, found.end_at) == ("2019-08-24T14:15:22Z", "2019-08-24T14:30:22Z")
    assert found.appointment_status == "scheduled"
    assert found.participants == (
        Participant("p1", "moderator", "admin@example.com", "Admin User"),
        Participant("p2", "participant", "user1@example.com", None),
    )
    meeting = found.meeting
    assert (meeting.id, meeting.status, meeting.conferencing_provider,
            meeting.external_meeting_id, meeting.join_url, meeting.host_url) == (
        ID, "created", "consularia", ID, None, None)


def test_list_item_says_nothing_about_participants() -> None:
    listed, fetched = event(list_item(), detail=False), event(detail())
    assert listed.participants is None
    # the listing and the detail agree on everything a listing holds: no false drift
    assert (listed.start_at, listed.end_at, listed.appointment_status, listed.meeting) == (
        fetched.start_at, fetched.end_at, fetched.appointment_status, fetched.meeting)


@pytest.mark.parametrize(("raw", "start", "end"), [
    ("2025-10-30 15:26:22.539536+00:00", "2025-10-30T15:26:22Z", "2025-10-30T16:26:22Z"),
    ("2025-10-30T15:26:22Z", "2025-10-30T15:26:22Z", "2025-10-30T16:26:22Z"),
    ("2025-10-30T17:26:22+02:00", "2025-10-30T15:26:22Z", "2025-10-30T16:26:22Z"),
    ("2025-10-30T15:26:22", "2025-10-30T15:26:22Z", "2025-10-30T16:26:22Z"),  # naive: UTC
])
def test_both_datetime_forms_and_end_is_start_plus_duration(raw: str, start: str,
                                                            end: str) -> None:
    found = event(detail(start_date_time=raw, duration_minutes=60))
    assert (found.start_at, found.end_at) == (start, end)


def test_missing_times_say_nothing() -> None:
    found = event(detail(start_date_time=None, duration_minutes=None))
    assert (found.start_at, found.end_at) == (None, None)


@pytest.mark.parametrize(("raw", "status"), [
    ("scheduled", "scheduled"), ("Active", "active"), ("COMPLETED", "completed"),
    ("cancelled", "canceled"), ("Canceled", "canceled"), ("cancelled-by-host", "canceled"),
    ("", None), (None, None), ("no_show", "no_show"),
])
def test_status_is_kept_lower_case_and_cancel_words_are_canceled(raw: str | None,
                                                                 status: str | None) -> None:
    assert appointment_status(raw) == status


def test_a_canceled_appointment_has_a_canceled_meeting() -> None:
    found = event(detail(status="cancelled"))
    assert (found.appointment_status, found.meeting.status) == ("canceled", "canceled")


def test_upper_case_ids_are_lower_cased() -> None:
    assert event(detail(id=ID.upper())).appointment_id == ID


def test_detail_without_participants_key_says_nothing_and_null_is_none() -> None:
    body = detail()
    del body["participants"]
    assert event(body).participants is None
    assert event(detail(participants=None)).participants == ()


def test_updated_at_is_read() -> None:
    assert updated_at(detail()) == "2019-08-24T14:20:00Z"
    assert updated_at(list_item()) is None


@pytest.mark.parametrize("bad", [
    detail(id="../users"), detail(id=7), detail(start_date_time="tomorrow"),
    detail(start_date_time=5), detail(duration_minutes="15"), detail(duration_minutes=True),
    detail(duration_minutes=-1), detail(status=3), detail(participants={"id": "x"}),
    detail(participants=["x"]), detail(participants=[{"role": "moderator"}]),
    detail(participants=[{"id": "p", "role": 5}]), [], "x",
])
def test_malformed_appointments_raise_envelope_error(bad: object) -> None:
    with pytest.raises(EnvelopeError) as caught:
        event(bad)
    assert "tomorrow" not in str(caught.value)
