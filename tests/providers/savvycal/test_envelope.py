"""Envelopes map to provider-neutral Events; anything malformed is a short EnvelopeError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meetsync.events import Event, Meeting, iso_utc
from meetsync.providers import EnvelopeError
from meetsync.providers.savvycal import SavvyCalWebhooks, appointment_event
from meetsync.providers.savvycal.envelope import CREDENTIAL_LIFETIME, _credentials_die

if TYPE_CHECKING:
    from tests.providers.savvycal.samples import Samples

provider = SavvyCalWebhooks()


def test_meeting_update_maps_every_field(samples: Samples) -> None:
    event = provider.parse(samples.body())
    assert event == Event(
        id="evt_0001",
        provider="savvycal",
        type="appointment.meeting.updated",
        occurred_at=1_740_837_600_000_000,
        appointment_id="appt_a1b2c3d4e5f6",
        appointment_status="scheduled",
        start_at="2025-03-01T15:00:00Z",
        end_at="2025-03-01T15:30:00Z",
        meeting=Meeting(
            id="amtg_a1b2c3d4e5f6",
            status="created",
            conferencing_provider="zoom_admin",
            external_meeting_id="82912345678",
            join_url="https://zoom.us/j/82912345678",
            host_url=samples.host_url,
            password="abc123",
            error_message=None,
            # Credentials die 24 h after the appointment ends (README).
            host_url_expires_at="2025-03-02T15:30:00Z",
            password_expires_at="2025-03-02T15:30:00Z",
        ),
    )


def test_replaced_event_carries_the_previous_meeting_id(samples: Samples) -> None:
    raw = samples.body(
        type="appointment.meeting.replaced",
        obj=samples.appointment(meeting=samples.meeting(id="amtg_newnewnewnew")),
        previous_attributes={"meeting": {"id": "amtg_oldoldoldold"}},
    )
    event = provider.parse(raw)
    assert isinstance(event, Event)
    assert event.meeting is not None and event.meeting.id == "amtg_newnewnewnew"
    assert event.previous_meeting_id == "amtg_oldoldoldold"


@pytest.mark.parametrize(
    "previous", [None, {}, {"meeting": None}, {"meeting": {"id": 7}}, {"meeting": "amtg_x"}, []]
)
def test_replaced_event_without_a_usable_previous_id_leaves_it_unset(
    samples: Samples, previous: Any
) -> None:
    raw = samples.body(type="appointment.meeting.replaced", previous_attributes=previous)
    event = provider.parse(raw)
    assert isinstance(event, Event)
    assert event.previous_meeting_id is None


def test_previous_attributes_only_matter_for_replaced_events(samples: Samples) -> None:
    raw = samples.body(previous_attributes={"meeting": {"id": "amtg_oldoldoldold"}})
    event = provider.parse(raw)
    assert isinstance(event, Event) and event.previous_meeting_id is None


@pytest.mark.parametrize(
    ("created_at", "micros"),
    [
        ("2025-03-01T14:00:00Z", 1_740_837_600_000_000),
        ("2025-03-01T09:00:00.250-05:00", 1_740_837_600_250_000),
        ("2025-03-01T14:00:00", 1_740_837_600_000_000),
    ],
)
def test_created_at_accepts_z_offsets_and_naive_utc(
    samples: Samples, created_at: str, micros: int
) -> None:
    event = provider.parse(samples.body(created_at=created_at))
    assert isinstance(event, Event) and event.occurred_at == micros


def test_zoned_times_fall_back_to_unix_ts_and_normalise_offsets(samples: Samples) -> None:
    obj = samples.appointment(
        start_at={"utc": None, "unix_ts": 1740841200},
        end_at={"utc": "2025-03-01T10:30:00-05:00"},
    )
    event = appointment_event(obj, event_id="sync_1", type="appointment.synced", occurred_at=5)
    assert (event.start_at, event.end_at) == ("2025-03-01T15:00:00Z", "2025-03-01T15:30:00Z")
    assert event.occurred_at == 5 and event.provider == "savvycal"


def test_missing_nullable_meeting_fields_become_none(samples: Samples) -> None:
    obj = samples.appointment(meeting={"id": "amtg_a1b2c3d4e5f6", "status": "pending"})
    event = appointment_event(obj, event_id="e", type="appointment.created", occurred_at=1)
    assert event.meeting == Meeting(
        id="amtg_a1b2c3d4e5f6", status="pending",
        host_url_expires_at="2025-03-02T15:30:00Z", password_expires_at="2025-03-02T15:30:00Z")


def test_appointment_without_a_meeting_has_none(samples: Samples) -> None:
    event = provider.parse(samples.body(obj=samples.appointment(meeting=None)))
    assert isinstance(event, Event) and event.meeting is None


def test_a_type_outside_appointments_is_returned_by_name(samples: Samples) -> None:
    assert (
        provider.parse(samples.body(type="poll.response.created", obj={}))
        == "poll.response.created"
    )


def changed(data: dict[str, Any], path: str, value: Any) -> bytes:
    """``data`` with the value at ``a.b.c`` replaced (or removed, for ``...``), as JSON."""
    *parents, leaf = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"evt"', "JSON object"),
    ],
)
def test_bodies_that_are_not_json_objects_are_envelope_errors(raw: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        provider.parse(raw)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("id", ..., "id must"),
        ("id", "", "id must"),
        ("id", 17, "id must"),
        ("created_at", ..., "created_at"),
        ("created_at", "yesterday", "created_at"),
        ("created_at", 1740837600, "created_at"),
        ("data", ..., "data must"),
        ("data", [], "data must"),
        ("data.type", ..., "data.type"),
        ("data.type", "", "data.type"),
        ("data.object", ..., "data.object"),
        ("data.object", "appt_x", "data.object"),
        ("data.object.id", ..., "appointment id"),
        ("data.object.status", 3, "appointment status"),
        ("data.object.start_at", "tomorrow", "start_at"),
        ("data.object.start_at", [], "start_at"),
        ("data.object.start_at", {"utc": "soon", "unix_ts": 1}, "start_at"),
        ("data.object.end_at", {"unix_ts": True}, "end_at"),
        ("data.object.end_at", {"unix_ts": 1e300}, "end_at"),
        ("data.object.meeting", "amtg_a1b2c3d4e5f6", "meeting must"),
        ("data.object.meeting.id", ..., "meeting id"),
        ("data.object.meeting.id", 12, "meeting id"),
        ("data.object.meeting.status", ..., "meeting status"),
        ("data.object.meeting.host_url", ["x"], "meeting host_url"),
    ],
)
def test_invalid_envelopes_are_envelope_errors(
    samples: Samples, path: str, value: Any, message: str
) -> None:
    with pytest.raises(EnvelopeError, match=message):
        provider.parse(changed(samples.envelope(), path, value))


def test_error_messages_never_quote_the_body(samples: Samples) -> None:
    raw = changed(samples.envelope(), "data.object.meeting.password", ["abc123", samples.host_url])
    with pytest.raises(EnvelopeError) as caught:
        provider.parse(raw)
    assert "abc123" not in str(caught.value) and "token" not in str(caught.value)


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_timestamps_beyond_the_utc_calendar_are_envelope_errors(
    samples: Samples, created_at: str
) -> None:
    with pytest.raises(EnvelopeError, match="out of range"):
        provider.parse(samples.body(created_at=created_at))


@given(end=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 29),
                        timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)))
def test_property_credentials_die_as_strftime_said(end: datetime) -> None:
    """``_credentials_die`` writes with ``isoformat`` what ``iso_utc`` (``strftime``) wrote,
    for every end ``_zoned`` can give it; the oracle is the formula it replaced."""
    text = iso_utc(end)
    oracle = (iso_utc(datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
                      + CREDENTIAL_LIFETIME)
              if len(text) == 20 and text < "9999-12-30" else None)
    assert _credentials_die(text) == oracle
