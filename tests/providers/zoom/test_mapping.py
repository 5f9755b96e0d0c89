"""Zoom meeting objects as Events: ids, times, statuses, credentials and their expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from meetsync.events import Event, Occurrence, to_micros
from meetsync.providers import EnvelopeError
from meetsync.providers.zoom.mapping import deleted_event, meeting_event, occurrences

STAMP = 1_740_841_200_000_000  # 2025-03-01T15:00:00Z
STAMP_ISO = "2025-03-01T15:00:00Z"


def meeting(**extra: Any) -> dict[str, Any]:
    return {"id": 85746065432, "uuid": "aDYlohsHRtCd4ii1uC2+hA==", "status": "waiting",
            "start_time": "2025-03-01T16:00:00Z", "duration": 45,
            "join_url": "https://zoom.us/j/85746065432", "password": "pw123",
            "start_url": "https://zoom.us/s/85746065432?zak=secret", **extra}


def fetched(obj: dict[str, Any], ttl: int = 7200) -> Event:
    return meeting_event(obj, event_id="e1", type="refetch", occurred_at=STAMP, account="acme",
                         ttl_seconds=ttl, fetched=True)


def test_fetched_meeting_carries_credentials_and_their_expiry() -> None:
    event = fetched(meeting())
    assert (event.appointment_id, event.provider, event.account) == ("85746065432", "zoom", "acme")
    assert (event.start_at, event.end_at) == ("2025-03-01T16:00:00Z", "2025-03-01T16:45:00Z")
    assert event.appointment_status == "scheduled"
    m = event.meeting
    assert m is not None
    assert (m.id, m.external_meeting_id, m.status, m.conferencing_provider) == (
        "85746065432", "85746065432", "created", "zoom")
    assert m.host_url == "https://zoom.us/s/85746065432?zak=secret"
    assert m.password == "pw123"
    assert m.host_url_expires_at == "2025-03-01T17:00:00Z"  # stamp + 7200 s
    assert m.password_expires_at == "2025-03-02T16:45:00Z"  # end + 24 h


def test_ttl_is_the_settings() -> None:
    m = fetched(meeting(), ttl=60).meeting
    assert m is not None and m.host_url_expires_at == "2025-03-01T15:01:00Z"


def test_offsets_normalised_to_utc() -> None:
    event = fetched(meeting(start_time="2025-03-01T10:00:00-05:00", duration=90))
    assert (event.start_at, event.end_at) == ("2025-03-01T15:00:00Z", "2025-03-01T16:30:00Z")


def test_no_start_url_no_expiry() -> None:
    obj = meeting()
    del obj["start_url"]
    m = fetched(obj).meeting
    assert m is not None and m.host_url is None and m.host_url_expires_at is None


def test_listed_rows_carry_no_credentials() -> None:
    event = meeting_event(meeting(), event_id="e", type="sweep", occurred_at=STAMP,
                          account="a", ttl_seconds=7200, fetched=False, listed=True)
    assert event.meeting is not None and event.meeting.join_url
    assert event.meeting.host_url is None and event.meeting.password is None


def test_a_lifecycle_webhook_says_nothing_about_the_meeting() -> None:
    event = meeting_event(meeting(), event_id="e", type="meeting.started", occurred_at=STAMP,
                          account="a", ttl_seconds=7200, fetched=False)
    assert event.meeting is None and not event.no_meeting


def test_created_carries_join_url_and_passcode_but_no_start_url() -> None:
    """No fetch can have seen a meeting before it was created: its Meeting erases nothing."""
    event = meeting_event(meeting(), event_id="e", type="meeting.created", occurred_at=STAMP,
                          account="a", ttl_seconds=7200, fetched=False)
    assert event.meeting is not None
    assert event.meeting.join_url == "https://zoom.us/j/85746065432"
    assert event.meeting.host_url is None and event.meeting.host_url_expires_at is None
    assert event.meeting.password is not None and event.meeting.password_expires_at


@pytest.mark.parametrize(("status", "expected"), [
    ("waiting", "scheduled"), ("started", "started"), ("finished", "ended"), (None, "scheduled"),
])
def test_status(status: str | None, expected: str) -> None:
    assert fetched(meeting(status=status)).appointment_status == expected


def test_ended_prefers_the_actual_end() -> None:
    event = meeting_event(meeting(id="85746065432", end_time="2025-03-01T16:20:00Z"),
                          event_id="e", type="meeting.ended", occurred_at=STAMP, account="a",
                          ttl_seconds=1, fetched=False)
    assert (event.appointment_status, event.end_at) == ("ended", "2025-03-01T16:20:00Z")


def test_no_start_time_no_times() -> None:
    obj = meeting(type=3)
    del obj["start_time"]
    event = fetched(obj)
    assert (event.start_at, event.end_at) == (None, None)


def test_deleted() -> None:
    event = deleted_event(meeting(), event_id="e", type="meeting.deleted", occurred_at=STAMP,
                          account="a")
    assert event.appointment_status == "deleted" and event.no_meeting and event.meeting is None
    assert event.end_at == "2025-03-01T16:45:00Z"


@pytest.mark.parametrize("obj", [
    meeting(id=None), meeting(id="../users/me"), meeting(id=True), meeting(id=-1),
    meeting(id=1.5), meeting(start_time="tomorrow"), meeting(duration="45"),
    meeting(duration=True), meeting(join_url=5), meeting(status=3),
    meeting(start_time="9999-12-31T23:59:00Z", duration=60),
])
def test_malformed(obj: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError) as caught:
        fetched(obj)
    assert "secret" not in str(caught.value) and "pw123" not in str(caught.value)


def test_occurrences() -> None:
    obj = meeting(type=8, occurrences=[
        {"occurrence_id": "1740841200000", "start_time": "2025-03-01T10:00:00-05:00",
         "duration": 30, "status": "available"},
        {"occurrence_id": 1740927600000, "start_time": "bad", "duration": "x"},
        {"occurrence_id": "1741014000000", "start_time": "2025-03-03T15:00:00Z",
         "duration": True, "status": "deleted"},
        {"occurrence_id": "1741100400000", "start_time": "2025-03-04T15:00:00",  # naive: UTC
         "duration": 60, "status": 5},
        {"occurrence_id": "1740841200000", "start_time": "2025-03-09T15:00:00Z"},  # a repeat
        {"start_time": "2025-03-05T15:00:00Z"}, {"occurrence_id": ""}, {"occurrence_id": True},
        "junk",
    ])
    assert occurrences(obj) == (
        Occurrence("1740841200000", "2025-03-01T15:00:00Z", "2025-03-01T15:30:00Z",
                   "available"),
        Occurrence("1740927600000", None, None, None),
        Occurrence("1741014000000", "2025-03-03T15:00:00Z", None, "deleted"),
        Occurrence("1741100400000", "2025-03-04T15:00:00Z", "2025-03-04T16:00:00Z", None),
    )


@pytest.mark.parametrize(("listed", "found"), [
    (None, ()),  # null: there are none
    ([], ()),
    ("junk", None),  # unreadable: says nothing
    ({"occurrence_id": "1"}, None),
])
def test_occurrences_null_empty_or_unreadable(listed: object, found: object) -> None:
    assert occurrences(meeting(occurrences=listed)) == found
    assert occurrences(meeting()) is None  # no key: says nothing


def test_fetched_and_listed_objects_carry_their_occurrences() -> None:
    obj = meeting(type=8, occurrences=[
        {"occurrence_id": "1740844800000", "start_time": "2025-03-01T16:00:00Z",
         "duration": 45, "status": "available"},
        {"occurrence_id": "1741449600000", "start_time": "2025-03-08T16:00:00Z",
         "duration": 45, "status": "deleted"}])
    expected = (
        Occurrence("1740844800000", "2025-03-01T16:00:00Z", "2025-03-01T16:45:00Z", "available"),
        Occurrence("1741449600000", "2025-03-08T16:00:00Z", "2025-03-08T16:45:00Z", "deleted"))
    assert fetched(obj).occurrences == expected
    listed = meeting_event(obj, event_id="e1", type="sweep", occurred_at=STAMP, account="acme",
                           ttl_seconds=7200, fetched=False, listed=True)
    assert listed.occurrences == expected
    created = meeting_event(obj, event_id="e1", type="meeting.created", occurred_at=STAMP,
                            account="acme", ttl_seconds=0, fetched=False)
    assert created.occurrences == expected
    assert fetched(meeting()).occurrences is None  # not recurring: says nothing
    assert fetched(meeting(occurrences=[])).occurrences == ()
    # A malformed list never costs the meeting its own fields.
    junk = fetched(meeting(occurrences="junk"))
    assert junk.occurrences is None and junk.meeting is not None


@pytest.mark.parametrize("kind", ["meeting.started", "meeting.ended"])
def test_partial_webhook_objects_say_nothing_about_occurrences(kind: str) -> None:
    obj = meeting(type=8, occurrences=[{"occurrence_id": "1", "start_time": STAMP_ISO}])
    event = meeting_event(obj, event_id="e1", type=kind, occurred_at=STAMP, account="acme",
                          ttl_seconds=0, fetched=False)
    assert event.occurrences is None


def test_a_deleted_meeting_says_nothing_about_occurrences() -> None:
    obj = meeting(type=8, occurrences=[{"occurrence_id": "1", "start_time": STAMP_ISO}])
    event = deleted_event(obj, event_id="e1", type="meeting.deleted", occurred_at=STAMP,
                          account="acme")
    assert event.occurrences is None


def test_a_fetched_waiting_meeting_past_its_scheduled_end_is_ended() -> None:
    """Zoom answers "waiting" again once a meeting ended: a sweep must not undo meeting.ended."""
    obj = meeting()
    start = datetime.fromisoformat(obj["start_time"].replace("Z", "+00:00"))
    after = to_micros(start + timedelta(minutes=obj["duration"], seconds=1))
    before = to_micros(start + timedelta(minutes=obj["duration"] - 1))
    statuses = [
        meeting_event({**obj, "status": "waiting"}, event_id="e", type="refetch",
                      occurred_at=at, account="a", ttl_seconds=7200, fetched=True
                      ).appointment_status
        for at in (before, after)
    ]
    assert statuses == ["scheduled", "ended"]
