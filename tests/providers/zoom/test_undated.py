"""``event_ts`` is optional in ``meeting.deleted`` alone (zoom/rivet-javascript,
``meetings/meetings.d.ts``: ``MeetingDeletedEvent`` has ``event_ts?: number``; every other
meeting event requires it). Such a deletion is ordered at its receipt, claiming no date."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from meetsync.events import UNDATED, Event, received
from meetsync.providers import EnvelopeError, Hint
from meetsync.providers.zoom.envelope import parse_envelope

OBJECT = {"id": 85746065432, "uuid": "u==", "host_id": "h", "type": 2,
          "start_time": "2025-03-01T16:00:00Z", "duration": 30}
RECEIPT = 1_765_000_000_000_000  # µs
TOLERANCE = 300_000_000


def body(event: str, obj: dict[str, Any], **envelope: Any) -> bytes:
    return orjson.dumps({"event": event, "payload": {"account_id": "a", "object": obj},
                         **envelope})


def test_a_deletion_without_event_ts_is_ordered_at_its_receipt() -> None:
    raw = body("meeting.deleted", OBJECT)
    event = parse_envelope(raw, account="acme")
    assert isinstance(event, Event) and event.occurred_at == UNDATED
    assert event.id.startswith("zoom:meeting.deleted:85746065432:sha256-")
    assert parse_envelope(raw, account="acme") == event  # a retried body: the same id
    other = parse_envelope(body("meeting.deleted", {**OBJECT, "topic": "x"}), account="acme")
    assert isinstance(other, Event) and other.id != event.id
    at = received(event, RECEIPT, TOLERANCE)
    assert (at.occurred_at, at.received_at, at.claimed_at) == (RECEIPT, RECEIPT, None)
    assert at.appointment_status == "deleted" and at.start_at == "2025-03-01T16:00:00Z"


def test_null_event_ts_is_missing_too_and_a_dated_one_keeps_its_date() -> None:
    event = parse_envelope(body("meeting.deleted", OBJECT, event_ts=None), account="acme")
    assert isinstance(event, Event) and event.occurred_at == UNDATED
    dated = parse_envelope(body("meeting.deleted", OBJECT, event_ts=1_740_841_200_123),
                           account="acme")
    assert isinstance(dated, Event) and dated.occurred_at == 1_740_841_200_123_000
    assert received(dated, RECEIPT, TOLERANCE).claimed_at is None


@pytest.mark.parametrize("kind", ["meeting.created", "meeting.started", "meeting.ended",
                                  "meeting.permanently_deleted"])
def test_other_events_still_need_event_ts(kind: str) -> None:
    with pytest.raises(EnvelopeError, match="event_ts"):
        parse_envelope(body(kind, OBJECT), account="acme")


@pytest.mark.parametrize("value", ["1740841200123", -1, True, 1.5, 10**16])
def test_a_deletion_with_a_bad_event_ts_is_still_refused(value: object) -> None:
    with pytest.raises(EnvelopeError, match="event_ts"):
        parse_envelope(body("meeting.deleted", OBJECT, event_ts=value), account="acme")


def test_an_undated_occurrence_deletion_is_a_hint() -> None:
    obj = {**OBJECT, "occurrences": [{"occurrence_id": "1740844800000",
                                      "start_time": "2025-03-01T16:00:00Z"}]}
    assert parse_envelope(body("meeting.deleted", obj), account="acme") == Hint(
        "85746065432", "acme", "meeting.deleted")
