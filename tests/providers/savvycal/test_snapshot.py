"""``appointment_snapshot`` reads what ``appointment_event`` would build, without building it.

The oracle is ``appointment_event`` itself: for any row the snapshot reads, the values are the
event's (where the mirror's snapshot holds them, then its credentials' expiries), or the row is
one the event refuses for a time that is no real moment (which nothing in the mirror equals).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from meetsync.providers import EnvelopeError, moment
from meetsync.providers.savvycal.envelope import appointment_event, appointment_snapshot
from meetsync.worker.reconciler import snapshot_of

CANONICAL = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda when: when.isoformat(timespec="seconds") + "Z")
TIMES = st.one_of(st.none(), CANONICAL.map(lambda text: {"utc": text, "time_zone": "UTC"}))
ODD_TIMES = st.one_of(
    st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z").map(lambda text: {"utc": text}),
    st.sampled_from([
        {"utc": "2025-03-01T15:00:00+00:00"}, {"utc": "2025-03-01T15:00:00.5Z"},
        {"utc": "0999-01-01T00:00:00Z"}, {"utc": "9999-12-31T23:59:59Z"},
        {"utc": None, "unix_ts": 1_740_841_200}, {"utc": None}, "2025-03-01T15:00:00Z", 5,
        {"utc": 5},
    ]),
)
TEXT = st.one_of(st.none(), st.sampled_from(["created", "zoom_admin", "https://x.test/j/1"]),
                 st.text(max_size=8))
ODD = st.sampled_from(["", None, 5, True, 1.5, ["a"], {"a": 1}])
MEETING_TEXT = ("conferencing_provider", "external_meeting_id", "join_url", "host_url",
                "password", "error_message")


ODD_FIELDS = ["id", "status", "start_at", "end_at", "meeting", "meeting.id", "meeting.status",
              *(f"meeting.{name}" for name in MEETING_TEXT)]


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    """An Appointment as the API lists it, half of them with one field made odd."""
    row: dict[str, Any] = {"id": "appt_1", "status": draw(TEXT),
                           "start_at": draw(TIMES), "end_at": draw(TIMES)}
    meeting = draw(st.sampled_from(["none", "absent", "object", "object"]))
    if meeting == "none":
        row["meeting"] = None
    elif meeting == "object":
        row["meeting"] = {"id": "amtg_1", "status": "created",
                          **{name: draw(TEXT) for name in MEETING_TEXT}}
        if draw(st.booleans()):
            row["meeting"]["external_meeting_id"] = draw(st.integers())
    odd = draw(st.one_of(st.none(), st.sampled_from(ODD_FIELDS)))  # half the rows: one
    if odd in ("start_at", "end_at"):
        row[odd] = draw(ODD_TIMES)
    elif odd is not None and odd.startswith("meeting.") and isinstance(row.get("meeting"), dict):
        row["meeting"][odd.removeprefix("meeting.")] = draw(ODD)
    elif odd is not None and not odd.startswith("meeting."):
        row[odd] = draw(ODD)
    return row


def expiries(row: dict[str, Any]) -> tuple[str | None, str | None]:
    event = appointment_event(row, event_id="e", type="reconcile", occurred_at=1)
    m = event.meeting
    return (None, None) if m is None else (m.host_url_expires_at, m.password_expires_at)


@settings(max_examples=1000, deadline=None)
@given(rows())
@example({"id": "a", "start_at": {"utc": "0999-01-01T00:00:00Z"}})
@example({"id": "a", "start_at": {"utc": "2025-02-30T00:00:00Z"}, "meeting": None})
@example({"id": "a", "end_at": {"utc": "2025-02-30T00:00:00Z"},
          "meeting": {"id": "m", "status": "created"}})
@example({"id": "a", "meeting": {"id": "m", "status": "created", "external_meeting_id": True}})
@example({"id": "a", "meeting": {"id": "m", "status": "created", "external_meeting_id": 12}})
@example({"id": "a", "end_at": {"utc": "9999-12-31T23:59:59Z"},
          "meeting": {"id": "m", "status": "created"}})
def test_snapshot_is_the_events_or_the_row_is_refused_for_its_time(row: dict[str, Any]) -> None:
    snapshot = appointment_snapshot(row)
    if snapshot is None:
        return  # parsed in full, as before
    try:
        event = appointment_event(row, event_id="e", type="reconcile", occurred_at=1)
    except EnvelopeError:
        assert any(text is not None and moment(text) is None for text in snapshot[1:3])
        return
    assert snapshot == (*snapshot_of(event).values(), *expiries(row))


def test_the_apis_usual_row_is_read() -> None:
    row = {
        "id": "appt_1", "status": "scheduled",
        "start_at": {"utc": "2025-03-01T15:00:00Z", "time_zone": "Europe/Paris"},
        "end_at": {"utc": "2025-03-01T15:30:00Z", "unix_ts": 1_740_843_000},
        "meeting": {"id": "amtg_1", "status": "created", "conferencing_provider": "zoom_admin",
                    "external_meeting_id": 82912345678, "join_url": "https://zoom.us/j/1",
                    "host_url": "https://h.test/host", "password": "abc", "error_message": None},
    }
    assert appointment_snapshot(row) == (
        "scheduled", "2025-03-01T15:00:00Z", "2025-03-01T15:30:00Z", "amtg_1", "created",
        "zoom_admin", "82912345678", "https://zoom.us/j/1", "https://h.test/host", "abc", None,
        "2025-03-02T15:30:00Z", "2025-03-02T15:30:00Z")
    assert appointment_snapshot({**row, "meeting": None})[3:] == (None,) * 10  # type: ignore[index]
