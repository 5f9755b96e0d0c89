"""SavvyCal's webhook envelope and Appointment object, turned into provider-neutral ``Event``s.

Envelope (README: Connecting SavvyCal)::

    {"id": "evt_...", "created_at": "<ISO-8601>",
     "data": {"type": "appointment.meeting.updated", "object": <Appointment>,
              "previous_attributes": {"meeting": {"id": "amtg_..."}}}}

Unknown fields are ignored anywhere (the provider adds fields at any time). Anything else wrong
is an ``EnvelopeError`` with a short message that never quotes the body.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import orjson

from meetsync.events import MEETING_FIELDS, Event, Meeting, iso_utc, to_micros
from meetsync.providers import EnvelopeError, moment

PROVIDER = "savvycal"
APPOINTMENT_PREFIX = "appointment."
REPLACED = "appointment.meeting.replaced"
CREDENTIAL_LIFETIME = timedelta(hours=24)
"""How long after its appointment ends a host_url (and the password) stays valid."""

_MEETING_TEXT_FIELDS = MEETING_FIELDS[1:]  # all but status, which is required


def parse_envelope(
    body: bytes, *, provider: str = PROVIDER, account: str = "default"
) -> Event | str:
    """The event a delivery carries, or the type name of an event that is not about appointments."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EnvelopeError("body is not JSON") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("envelope must be a JSON object")
    event_id = envelope.get("id")
    if not _text(event_id):
        raise EnvelopeError("id must be a non-empty string")
    occurred = moment(envelope.get("created_at"))
    if occurred is None:
        raise EnvelopeError("created_at must be an ISO-8601 timestamp")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise EnvelopeError("data must be an object")
    event_type = data.get("type")
    if not _text(event_type):
        raise EnvelopeError("data.type must be a non-empty string")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise EnvelopeError("data.object must be an object")
    if not event_type.startswith(APPOINTMENT_PREFIX):
        return event_type
    return appointment_event(
        obj,
        event_id=event_id,
        type=event_type,
        occurred_at=_micros(occurred, "created_at"),
        previous_meeting_id=_previous_meeting_id(data) if event_type == REPLACED else None,
        provider=provider,
        account=account,
    )


def appointment_event(
    obj: dict[str, Any],
    *,
    event_id: str,
    type: str,
    occurred_at: int,
    previous_meeting_id: str | None = None,
    provider: str = PROVIDER,
    account: str = "default",
) -> Event:
    """The ``Event`` for one Appointment object (from a webhook or an API response).

    Its meeting's ``host_url`` and ``password`` die 24 h after the appointment ends (the
    provider answers 410 after that; README: Where we had to guess the provider's behaviour).
    """
    if not isinstance(obj, dict):
        raise EnvelopeError("appointment must be an object")
    appointment_id = obj.get("id")
    if not _text(appointment_id):
        raise EnvelopeError("appointment id must be a non-empty string")
    status = obj.get("status")
    if status is not None and not isinstance(status, str):
        raise EnvelopeError("appointment status must be a string")
    end_at = _zoned(obj.get("end_at"), "end_at")
    return Event(
        id=event_id,
        provider=provider,
        type=type,
        occurred_at=occurred_at,
        appointment_id=appointment_id,
        appointment_status=status,
        start_at=_zoned(obj.get("start_at"), "start_at"),
        end_at=end_at,
        meeting=_meeting(obj.get("meeting"), _credentials_die(end_at)),
        previous_meeting_id=previous_meeting_id,
        # ``meeting: null`` is the provider saying there is none; a missing key says nothing.
        no_meeting="meeting" in obj and obj["meeting"] is None,
        account=account,  # whose secret (or API token) vouched for it: its appointment's owner
    )


def appointment_snapshot(obj: object) -> tuple[object, ...] | None:
    """What ``appointment_event(obj)`` would hold where the mirror's snapshot does, read without
    building it: status, start_at, end_at, then the meeting's id and ``MEETING_FIELDS`` (the
    order of ``meetsync.store.mirror.SNAPSHOT_FIELDS``), then when its host_url and password
    die (``meetsync.providers.Unchanged``). A sweep builds (and validates) the ``Event`` only
    for a row whose values differ from the mirror's.

    None for a row in any but the API's usual shape (an id, text or null fields, times as
    ``{"utc": "2025-03-01T15:00:00Z", ...}`` or null): it is parsed in full. The time text is
    checked for its shape only: one that is no real moment equals nothing the mirror holds
    (every time there went through ``appointment_event``), so its row is parsed in full, and
    refused, all the same.
    """
    if not isinstance(obj, dict):
        return None
    status = obj.get("status")
    if not _text(obj.get("id")) or (status is not None and not isinstance(status, str)):
        return None
    start_at, end_at = _utc_text(obj.get("start_at")), _utc_text(obj.get("end_at"))
    if start_at is _ODD or end_at is _ODD:
        return None
    meeting = obj.get("meeting")
    if meeting is None:
        return (status, start_at, end_at, *_NO_MEETING)
    if not isinstance(meeting, dict):
        return None
    meeting_id, meeting_status, provider, external, *rest = map(meeting.get, _MEETING_KEYS)
    if not (_text(meeting_id) and _text(meeting_status)):
        return None
    if isinstance(external, int) and not isinstance(external, bool):
        external = str(external)  # as ``_meeting`` reads Zoom's numeric ids
    for value in (provider, external, *rest):
        if value is not None and not isinstance(value, str):
            return None
    try:
        dies = _credentials_die(end_at)
    except ValueError:  # shaped like a time, but none: parsed in full, and refused
        return None
    return (status, start_at, end_at, meeting_id, meeting_status, provider, external, *rest,
            dies, dies)


_MEETING_KEYS = ("id", *MEETING_FIELDS)
_NO_MEETING = (None,) * (len(_MEETING_KEYS) + 2)


_ODD = "odd"  # no time's text


def _utc_text(value: object) -> str | None:
    """A zoned time's ``utc`` text when it is null or already canonical (``_canonical``'s
    shape, a year from 1000 on), else ``_ODD``."""
    if value is None:
        return None
    text = value.get("utc") if isinstance(value, dict) else None
    if (
        isinstance(text, str) and len(text) == 20 and text[19] == "Z" and text[10] == "T"
        and text[4] == text[7] == "-" and text[13] == text[16] == ":" and text[0] != "0"
    ):
        return text
    return _ODD


def _credentials_die(end_at: str | None) -> str | None:
    """``iso_utc`` of ``end_at`` (``_zoned``'s text) plus the credentials' lifetime; from year
    1000 on, ``isoformat`` writes the same text as ``strftime`` at a third of its cost."""
    if end_at is None:
        return None
    if end_at.endswith("Z") and len(end_at) == 20 and end_at < "9999-12-30":
        moment = datetime.fromisoformat(end_at[:19])
        if end_at >= "1000":
            return f"{(moment + CREDENTIAL_LIFETIME).isoformat()}Z"
        return iso_utc(moment.replace(tzinfo=UTC) + CREDENTIAL_LIFETIME)
    return None


def _meeting(value: object, expires_at: str | None = None) -> Meeting | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EnvelopeError("meeting must be an object or null")
    meeting_id = value.get("id")
    if not _text(meeting_id):
        raise EnvelopeError("meeting id must be a non-empty string")
    status = value.get("status")
    if not _text(status):
        raise EnvelopeError("meeting status must be a non-empty string")
    fields: dict[str, str | None] = {}
    for name in _MEETING_TEXT_FIELDS:
        field = value.get(name)
        if name == "external_meeting_id" and isinstance(field, int) and not isinstance(field, bool):
            field = str(field)  # Zoom's meeting ids are numbers; accept them unquoted too
        if field is not None and not isinstance(field, str):
            raise EnvelopeError(f"meeting {name} must be a string or null")
        fields[name] = field
    return Meeting(id=meeting_id, status=status, **fields,
                   host_url_expires_at=expires_at, password_expires_at=expires_at)


def _zoned(value: object, name: str) -> str | None:
    """A ZonedDateTime (``utc``, else ``unix_ts``) as the mirror's UTC string; null stays None."""
    if value is None:
        return None
    when: datetime | None = None
    if isinstance(value, str):
        when = moment(value)
    elif isinstance(value, dict):
        when = moment(value.get("utc"))
        if when is None and value.get("utc") is None:
            when = _from_unix(value.get("unix_ts"))
    if when is None:
        raise EnvelopeError(f"appointment {name} must be a zoned date-time")
    text = value.get("utc") if isinstance(value, dict) else None
    if _canonical(text, when):
        return text
    try:
        return iso_utc(when)
    except (OverflowError, ValueError):
        raise EnvelopeError(f"appointment {name} is out of range") from None


def _canonical(text: object, moment: datetime) -> TypeGuard[str]:
    """Whether ``text`` (which parsed as ``moment``) is already ``iso_utc(moment)``: the
    provider's usual ``2025-03-01T15:00:00Z``, kept as is to skip a ``strftime`` per field
    (the receiver's profile, bench/notes.md)."""
    return (
        isinstance(text, str)
        and len(text) == 20
        and text[19] == "Z"
        and text[10] == "T"
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
        and moment.year >= 1000  # strftime("%Y") does not zero-pad earlier years
    )


def _previous_meeting_id(data: dict[str, Any]) -> str | None:
    previous = data.get("previous_attributes")
    meeting = previous.get("meeting") if isinstance(previous, dict) else None
    meeting_id = meeting.get("id") if isinstance(meeting, dict) else None
    return meeting_id if _text(meeting_id) else None



def _from_unix(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _micros(moment: datetime, name: str) -> int:
    try:
        return to_micros(moment)
    except (OverflowError, ValueError):
        raise EnvelopeError(f"{name} is out of range") from None


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""
