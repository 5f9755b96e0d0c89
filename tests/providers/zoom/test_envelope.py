"""Zoom deliveries: each event type to an Event, a Hint, a Reply or an ignored type name."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meetsync.events import Event
from meetsync.providers import EnvelopeError, Hint, Reply, SignatureError
from meetsync.providers.zoom import PROVIDER, ZoomWebhooks
from meetsync.providers.zoom.envelope import UrlValidation, parse_envelope
from meetsync.settings import Account

TS = 1_740_841_200_123
OBJECT = {"id": 85746065432, "uuid": "u==", "host_id": "h", "topic": "t", "type": 2,
          "start_time": "2025-03-01T16:00:00Z", "duration": 30, "timezone": "UTC",
          "join_url": "https://zoom.us/j/85746065432", "password": "pw"}


def body(event: str, obj: dict[str, Any] | None = None, **payload: Any) -> bytes:
    inner: dict[str, Any] = {"account_id": "acct", **payload}
    if obj is not None:
        inner["object"] = obj
    return orjson.dumps({"event": event, "event_ts": TS, "payload": inner})


def parse(raw: bytes) -> object:
    return parse_envelope(raw, account="acme")


def test_created() -> None:
    event = parse(body("meeting.created", OBJECT, operator="o@x"))
    assert isinstance(event, Event)
    assert event.id == f"zoom:meeting.created:85746065432:{TS}"
    assert event.occurred_at == TS * 1000
    assert (event.appointment_id, event.account, event.appointment_status) == (
        "85746065432", "acme", "scheduled")
    assert (event.start_at, event.end_at) == ("2025-03-01T16:00:00Z", "2025-03-01T16:30:00Z")
    # Join URL and passcode, never a start_url (webhooks carry none).
    assert event.meeting is not None and event.meeting.host_url is None
    assert event.meeting.join_url == OBJECT["join_url"]


def test_created_recurring_carries_its_occurrences() -> None:
    obj = {**OBJECT, "type": 8, "occurrences": [
        {"occurrence_id": "1740844800000", "start_time": "2025-03-01T16:00:00Z",
         "duration": 30, "status": "available"},
        {"occurrence_id": "1741449600000", "start_time": "2025-03-08T16:00:00Z",
         "duration": 30, "status": "available"}]}
    event = parse(body("meeting.created", obj, operator="o@x"))
    assert isinstance(event, Event) and event.occurrences is not None
    assert [(o.id, o.start_at, o.end_at, o.status) for o in event.occurrences] == [
        ("1740844800000", "2025-03-01T16:00:00Z", "2025-03-01T16:30:00Z", "available"),
        ("1741449600000", "2025-03-08T16:00:00Z", "2025-03-08T16:30:00Z", "available")]
    plain = parse(body("meeting.created", OBJECT))
    assert isinstance(plain, Event) and plain.occurrences is None


def test_an_update_to_a_recurring_meeting_is_still_a_hint() -> None:
    partial = {"id": 85746065432, "start_time": "2025-03-01T17:00:00Z",
               "occurrences": [{"occurrence_id": "1740848400000",
                                "start_time": "2025-03-01T17:00:00Z"}]}
    assert isinstance(parse(body("meeting.updated", partial, old_object={"id": 85746065432})),
                      Hint)


@pytest.mark.parametrize(("kind", "status"), [("started", "started"), ("ended", "ended")])
def test_lifecycle_with_string_ids(kind: str, status: str) -> None:
    event = parse(body(f"meeting.{kind}", {**OBJECT, "id": "85746065432"}))
    assert isinstance(event, Event)
    assert (event.appointment_id, event.appointment_status) == ("85746065432", status)
    assert event.meeting is None


def test_number_and_string_ids_agree() -> None:
    one = parse(body("meeting.started", {**OBJECT, "id": "85746065432"}))
    other = parse(body("meeting.started", OBJECT))
    assert isinstance(one, Event) and isinstance(other, Event)
    assert one.appointment_id == other.appointment_id and one.id == other.id


@pytest.mark.parametrize("kind", ["meeting.deleted", "meeting.permanently_deleted"])
def test_deleted(kind: str) -> None:
    event = parse(body(kind, {"id": 85746065432, "uuid": "u", "host_id": "h"}))
    assert isinstance(event, Event)
    assert (event.appointment_status, event.no_meeting, event.meeting) == ("deleted", True, None)


def test_deleting_occurrences_is_a_hint() -> None:
    obj = {**OBJECT, "occurrences": [{"occurrence_id": "1", "start_time": "2025-03-01T16:00:00Z"}]}
    assert parse(body("meeting.deleted", obj)) == Hint("85746065432", "acme", "meeting.deleted")


def test_partial_update_is_a_hint() -> None:
    raw = body("meeting.updated", {"id": 85746065432, "topic": "new"},
               old_object={"id": 85746065432, "topic": "old"}, time_stamp=TS)
    assert parse(raw) == Hint(appointment_id="85746065432", account="acme", type="meeting.updated")


def test_recovered_is_a_hint() -> None:
    assert parse(body("meeting.recovered", OBJECT)) == Hint("85746065432", "acme",
                                                             "meeting.recovered")


def test_snapshot_without_start_time_is_a_hint() -> None:
    obj = {k: v for k, v in OBJECT.items() if k != "start_time"}
    assert isinstance(parse(body("meeting.created", obj)), Hint)


def test_other_events_are_ignored_by_name() -> None:
    assert parse(body("meeting.participant_joined", OBJECT)) == "meeting.participant_joined"
    assert parse(body("recording.completed")) == "recording.completed"


def test_url_validation() -> None:
    raw = orjson.dumps({"event": "endpoint.url_validation", "event_ts": TS,
                        "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}})
    assert parse(raw) == UrlValidation("qgg8vlvZRS6UYooatFL8Aw")


def test_url_validation_reply_uses_the_secret_that_signed() -> None:
    accounts = [Account("zoom", "a", {"webhook_secret_token": ("a-new", "a-old")}),
                Account("zoom", "b", {"webhook_secret_token": ("b-only",)})]
    hooks = ZoomWebhooks(accounts, clock=lambda: 1_700_000_000)
    raw = (b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},'
           b'"event_ts":1700000000000,"event":"endpoint.url_validation"}')
    for secret, account in [("a-old", "a"), ("b-only", "b"), ("a-new", "a")]:
        digest = hmac.new(secret.encode(), b"v0:1700000000:" + raw, hashlib.sha256).hexdigest()
        headers = {"x-zm-signature": f"v0={digest}", "x-zm-request-timestamp": "1700000000"}
        assert hooks.verify(raw, headers) == account
        reply = hooks.parse(raw, account)
        assert isinstance(reply, Reply)
        expected = hmac.new(secret.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256)
        assert orjson.dumps(reply.body) == (
            b'{"plainToken":"qgg8vlvZRS6UYooatFL8Aw","encryptedToken":"'
            + expected.hexdigest().encode() + b'"}')


def test_unsigned_url_validation_is_refused() -> None:
    hooks = PROVIDER.webhooks([Account("zoom", "a", {"webhook_secret_token": ("s",)})])
    assert hooks is not None
    with pytest.raises(SignatureError):
        hooks.verify(b'{"event":"endpoint.url_validation","payload":{"plainToken":"x"}}', {})


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b'"x"', b"{}",
    b'{"event": 1, "payload": {}}',
    b'{"event": "meeting.created"}',
    b'{"event": "meeting.created", "payload": []}',
    b'{"event": "meeting.created", "payload": {}, "event_ts": 1}',
    b'{"event": "meeting.created", "payload": {"object": {"id": 1}}}',
    b'{"event": "meeting.created", "payload": {"object": {"id": 1}}, "event_ts": "1"}',
    b'{"event": "meeting.created", "payload": {"object": {"id": 1}}, "event_ts": -1}',
    b'{"event": "meeting.created", "payload": {"object": {"id": "abc"}}, "event_ts": 1}',
    b'{"event": "meeting.updated", "payload": {"object": {}}, "event_ts": 1}',
    b'{"event": "endpoint.url_validation", "payload": {}}',
    b'{"event": "endpoint.url_validation", "payload": {"plainToken": 5}}',
    b'{"event": "endpoint.url_validation", "payload": {"plainToken": "a\\nb"}}',
    b'{"event": "meeting.created", "payload": {"object": {"id": 1, "start_time": "x"}},'
    b' "event_ts": 1}',
])
def test_bad_envelopes(raw: bytes) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse(raw)
    assert len(str(caught.value)) < 80


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=5),
    max_leaves=20,
)
KNOWN = st.sampled_from(["meeting.created", "meeting.started", "meeting.ended",
                         "meeting.deleted", "meeting.updated", "endpoint.url_validation", "x"])
FIELDS = st.fixed_dictionaries({}, optional={
    "id": st.integers() | st.text() | JSON, "start_time": st.text() | JSON,
    "duration": st.integers() | JSON, "end_time": st.text(), "join_url": JSON,
    "occurrences": JSON, "status": JSON,
})


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    JSON.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda e, ts, obj, token: json.dumps(
        {"event": e, "event_ts": ts, "payload": {"object": obj, "plainToken": token}}).encode(),
        KNOWN, st.integers() | JSON, FIELDS, JSON),
    st.binary(max_size=64),
))
def test_arbitrary_bodies_raise_only_envelope_error(raw: bytes) -> None:
    try:
        result = parse(raw)
    except EnvelopeError:
        return
    assert isinstance(result, Event | Hint | UrlValidation | str)
