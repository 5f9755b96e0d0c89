"""Avon appointments map to Events: times in ms or ISO, status from the last history entry,
video calls vs in person, and ordering by last_updated_at."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meetsync.events import Meeting, Participant
from meetsync.providers import EnvelopeError
from meetsync.providers.avon import appointment_event

STAMP = 1_700_000_000_000_000  # µs: the fetch stamp

# the documented example (docs.avonhealth.com, "Appointment")
DOC: dict[str, Any] = {
    "id": "appt_2UxtAULYUrX7GVsTKePy",
    "object": "appointment",
    "appointment_type": "aptp_3XxtAULYUrX7GVsTKePy",
    "name": "Annual Check-in",
    "group": False,
    "internal": False,
    "recurring": {"is_recurring": False},
    "start_time": 1692370044000,
    "end_time": 1692373642000,
    "host": "user_Z1zXZKvqrpwxbznuW6lJ",
    "attendees": [{"id": "user_IsW3SoxZQxW0agHKyP2V", "attendance_status": "going",
                   "no_show": False, "payment_status": "not_applicable",
                   "last_updated_at": 1653798303000}],
    "interaction_type": "video_call",
    "video_call": {"join_url": "https://us06web.zoom.us/j/85129814133",
                   "meeting_id": "85129814133"},
    "status_history": [{"status": "scheduled", "changed_by": "user_xeDpGyt67wTor93qKtS7",
                        "changed_at": 1653798303000}],
    "created_by": "user_xeDpGyt67wTor93qKtS7",
    "created_at": 1653798303000,
    "last_updated_at": 1653798303000,
}


def doc(**changes: Any) -> dict[str, Any]:
    found = copy.deepcopy(DOC)
    for name, value in changes.items():
        if value is None:
            found.pop(name, None)
        else:
            found[name] = value
    return found


def event(obj: Any) -> Any:
    return appointment_event(obj, event_id="e1", type="fetch", occurred_at=STAMP,
                             account="default")


def test_documented_example() -> None:
    found = event(DOC)
    assert found.provider == "avon"
    assert found.appointment_id == "appt_2UxtAULYUrX7GVsTKePy"
    assert found.appointment_status == "scheduled"
    assert found.start_at == "2023-08-18T14:47:24Z"
    assert found.end_at == "2023-08-18T15:47:22Z"
    assert found.occurred_at == 1653798303000 * 1000
    assert found.meeting == Meeting(
        id="appt_2UxtAULYUrX7GVsTKePy:85129814133", status="created",
        conferencing_provider="zoom", external_meeting_id="85129814133",
        join_url="https://us06web.zoom.us/j/85129814133")
    assert found.meeting.host_url is None and found.meeting.password is None
    assert not found.no_meeting
    assert found.participants == (
        Participant(id="user_Z1zXZKvqrpwxbznuW6lJ", role="host"),
        Participant(id="user_IsW3SoxZQxW0agHKyP2V", role="attendee"))


@pytest.mark.parametrize(("start", "end"), [
    (1692370044000, 1692373642000),                              # epoch ms (older docs)
    ("2023-08-18T14:47:24.000Z", "2023-08-18T15:47:22Z"),        # ISO-8601 (newer docs)
    ("2023-08-18T10:47:24-04:00", "2023-08-18T11:47:22-04:00"),  # with an offset
    ("1692370044000", "1692373642000"),                          # ms as text
    (1692370044000.0, 1692373642000.9),
])
def test_times_in_ms_or_iso(start: Any, end: Any) -> None:
    found = event(doc(start_time=start, end_time=end))
    assert (found.start_at, found.end_at) == ("2023-08-18T14:47:24Z", "2023-08-18T15:47:22Z")


def test_missing_times_say_nothing() -> None:
    found = event(doc(start_time=None, end_time=None))
    assert found.start_at is None and found.end_at is None


@pytest.mark.parametrize("bad", [True, "tomorrow", -1, 10**20, [], {"utc": "x"}, float("inf")])
def test_bad_times(bad: Any) -> None:
    with pytest.raises(EnvelopeError, match="start_time"):
        event(doc(start_time=bad))


@pytest.mark.parametrize(("history", "status"), [
    ([{"status": "scheduled"}, {"status": "confirmed"}], "confirmed"),
    ([{"status": "scheduled"}, {"status": "in_progress"}, {"status": "completed"}], "completed"),
    ([{"status": "scheduled"}, {"status": "cancelled"}], "canceled"),
    ([{"status": "Cancelled"}], "canceled"),
    ([{"status": "NO_SHOW"}], "no_show"),
    # the last entry, not the newest changed_at
    ([{"status": "completed", "changed_at": 2}, {"status": "scheduled", "changed_at": 1}],
     "scheduled"),
    ([], None),
    (None, None),
])
def test_status_is_the_last_history_entry(history: Any, status: str | None) -> None:
    assert event(doc(status_history=history)).appointment_status == status


@pytest.mark.parametrize("history", ["scheduled", [{"state": "x"}], ["scheduled"],
                                     [{"status": ""}], [{"status": 3}]])
def test_bad_history(history: Any) -> None:
    with pytest.raises(EnvelopeError):
        event(doc(status_history=history))


def test_cancelled_video_call_meeting_is_canceled() -> None:
    found = event(doc(status_history=[{"status": "scheduled"}, {"status": "cancelled"}]))
    assert found.meeting is not None and found.meeting.status == "canceled"


def test_in_person_has_no_meeting() -> None:
    found = event(doc(interaction_type="in_person", video_call=None,
                      location={"city": "Springfield"}))
    assert found.meeting is None and found.no_meeting


def test_in_person_with_stale_video_details_has_no_meeting() -> None:
    assert event(doc(interaction_type="in_person")).no_meeting


@pytest.mark.parametrize("details", [None, {}, {"join_url": None, "meeting_id": ""}])
def test_video_call_without_details_says_nothing(details: Any) -> None:
    obj = doc(video_call=details) if details is not None else doc(video_call=None)
    found = event(obj)
    assert found.meeting is None and not found.no_meeting


def test_no_interaction_type_says_nothing() -> None:
    found = event(doc(interaction_type=None))
    assert found.meeting is None and not found.no_meeting


def test_numeric_meeting_id_and_join_url_only() -> None:
    found = event(doc(video_call={"join_url": "https://zoom.us/j/1", "meeting_id": 85129814133}))
    assert found.meeting is not None
    assert found.meeting.external_meeting_id == "85129814133"
    only_url = event(doc(video_call={"join_url": "https://zoom.us/j/1"}))
    assert only_url.meeting is not None
    assert only_url.meeting.id == "appt_2UxtAULYUrX7GVsTKePy:video"
    assert only_url.meeting.external_meeting_id is None


def test_a_new_zoom_meeting_is_a_new_meeting() -> None:
    before = event(DOC)
    after = event(doc(video_call={"join_url": "https://zoom.us/j/2", "meeting_id": "2"}))
    assert before.meeting and after.meeting and before.meeting.id != after.meeting.id


@pytest.mark.parametrize("video_call", [
    "https://zoom.us/j/1", {"join_url": 5}, {"meeting_id": "../../x"}, {"meeting_id": True}])
def test_bad_video_call(video_call: Any) -> None:
    with pytest.raises(EnvelopeError):
        event(doc(video_call=video_call))


def test_ordering_by_last_updated_at() -> None:
    older = event(doc(last_updated_at=1_700_000_000_000))
    newer = event(doc(last_updated_at=1_700_000_000_001))
    assert older.occurred_at == 1_700_000_000_000_000
    assert newer.occurred_at > older.occurred_at
    iso = event(doc(last_updated_at="2023-11-14T22:13:20.001Z"))
    assert iso.occurred_at == newer.occurred_at


def test_without_last_updated_at_the_fetch_stamp_orders() -> None:
    assert event(doc(last_updated_at=None)).occurred_at == STAMP


@pytest.mark.parametrize("bad", [
    "x", ["appt_1"], {"id": "appt_1", "object": "patient"}, {"id": "user_1"}, {"id": 5},
    {"id": "appt_1", "interaction_type": 3}, {"id": "appt_1", "last_updated_at": "soon"},
    {"id": "appt_1", "last_updated_at": "0001-01-01T00:00:00+00:00"},
])
def test_malformed_appointments(bad: Any) -> None:
    with pytest.raises(EnvelopeError):
        event(bad)


def test_attendees_as_strings_and_junk() -> None:
    found = event(doc(attendees=["user_a", {"id": "user_b"}, {"no": "id"}, 7], host=None))
    assert found.participants == (Participant(id="user_a", role="attendee"),
                                  Participant(id="user_b", role="attendee"))
    assert event(doc(attendees=None, host=None)).participants is None
