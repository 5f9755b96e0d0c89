"""One Consularia Connect appointment (a list item or ``GET /appointments/{id}/``) as an ``Event``.

Fields (Consularia's OpenAPI excerpt; our guesses: docs/providers.md)::

    detail  id, title, start_date_time, duration_minutes, status, config,
            participants [{id, unique_id, display_name, role}], created_at, updated_at
    list    id, title, start_date_time, duration_minutes, status, participant_count,
            organization_name, created_at        (no participants, no updated_at)

- ``appointment_id`` = ``id``, a UUID, kept in its canonical lower-case form (it also goes
  into an API path, so anything else is refused).
- ``start_at`` = ``start_date_time`` as ``YYYY-MM-DDTHH:MM:SSZ``. The responses show
  ``2019-08-24T14:15:22Z``; the create example shows ``2025-10-30 15:26:22.539536+00:00``:
  both are read (``datetime.fromisoformat``); a value without an offset is read as UTC (the
  field is documented "(UTC)"). ``end_at`` = start + ``duration_minutes`` (documented 15..720;
  anything from 0 to ``MAX_MINUTES`` is accepted).
- ``appointment_status`` = ``status``, lower-cased. Its values are undocumented (the schema
  says ``string``): kept as given, except the obvious cancel words (``cancelled``,
  ``canceled``, ``cancel``...) which become the mirror's ``canceled``. Absent or empty: None.
- ``participants``: from a detail only, a tuple of ``Participant(id, role, unique_id,
  display_name)`` in the order given. A list item carries none: None ("says nothing").
- ``meeting``: Consularia Connect is itself the video platform, so every appointment is its
  own meeting: ``Meeting(id=appointment id, status="created" (``canceled`` with a canceled
  appointment), conferencing_provider="consularia", external_meeting_id=appointment id)``.
  The API documents no join URL, host URL or passcode: those stay None. List items and
  details give the same Meeting, so comparing a listing with the mirror finds no false drift.
  An appointment the API no longer knows (404) is ``meetsync.events.gone`` (no meeting).
- ``updated_at`` is read (``updated_at(obj)``) but not used for ordering: every snapshot is
  ordered by its fetch stamp (``occurred_at``, taken before the request was sent).

Malformed objects raise ``EnvelopeError`` with a short message that quotes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from meetsync.events import Event, Meeting, Participant, iso_utc
from meetsync.providers import EnvelopeError, moment
from meetsync.providers.parsing import iso, optional_text

PROVIDER = "consularia"
MAX_MINUTES = 60 * 24 * 366
CANCELED = "canceled"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_CANCEL_WORDS = frozenset({
    "canceled", "cancelled", "cancel", "canceled_by_host", "cancelled_by_host",
    "canceled_by_participant", "cancelled_by_participant", "revoked", "annulled",
})  # fmt: skip
_TEXT_LIMIT = 1000


def appointment_id(obj: dict[str, Any]) -> str:
    """``obj["id"]``: a UUID, lower-cased; ``EnvelopeError`` otherwise."""
    value = obj.get("id")
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise EnvelopeError("appointment id must be a UUID")
    return value.lower()


def is_appointment_id(value: str) -> bool:
    return bool(_UUID.fullmatch(value))


def appointment_event(
    obj: object,
    *,
    event_id: str,
    type: str,
    occurred_at: int,
    account: str,
    detail: bool,
) -> Event:
    """The ``Event`` for one appointment: ``detail`` from ``GET /appointments/{id}/`` (with its
    participants), else a list item (see the module docstring)."""
    if not isinstance(obj, dict):
        raise EnvelopeError("appointment must be an object")
    key = appointment_id(obj)
    start = _start(obj)
    end = _end(obj, start)
    status = appointment_status(obj.get("status"))
    return Event(
        id=event_id,
        provider=PROVIDER,
        type=type,
        occurred_at=occurred_at,
        appointment_id=key,
        appointment_status=status,
        start_at=iso(start, "appointment time"),
        end_at=iso(end, "appointment time"),
        meeting=Meeting(
            id=key,
            status=CANCELED if status == CANCELED else "created",
            conferencing_provider=PROVIDER,
            external_meeting_id=key,
        ),
        account=account,
        participants=participants(obj) if detail else None,
    )


def appointment_status(value: object) -> str | None:
    """``status`` lower-cased; the cancel words as ``canceled``; None when absent or empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvelopeError("appointment status must be a string")
    text = value.strip().lower()
    if not text:
        return None
    if len(text) > 64:
        raise EnvelopeError("appointment status is too long")
    return CANCELED if text in _CANCEL_WORDS or text.replace("-", "_") in _CANCEL_WORDS else text


def participants(obj: dict[str, Any]) -> tuple[Participant, ...] | None:
    """A detail's participants; None when it has no ``participants`` key (says nothing)."""
    if "participants" not in obj:
        return None
    listed = obj["participants"]
    if listed is None:
        return ()
    if not isinstance(listed, list):
        raise EnvelopeError("appointment participants must be a list")
    found: list[Participant] = []
    for item in listed:
        if not isinstance(item, dict):
            raise EnvelopeError("participant must be an object")
        participant_id = item.get("id")
        if not isinstance(participant_id, str) or not participant_id.strip():
            raise EnvelopeError("participant id must be a non-empty string")
        found.append(Participant(
            id=participant_id,
            role=optional_text(item, "role", "participant", limit=_TEXT_LIMIT),
            unique_id=optional_text(item, "unique_id", "participant", limit=_TEXT_LIMIT),
            display_name=optional_text(item, "display_name", "participant", limit=_TEXT_LIMIT),
        ))
    return tuple(found)


def updated_at(obj: dict[str, Any]) -> str | None:
    """``updated_at`` as ``YYYY-MM-DDTHH:MM:SSZ`` (details only); None when absent or bad."""
    when = moment(obj.get("updated_at"))
    if when is None:
        return None
    try:
        return iso_utc(when)
    except (OverflowError, ValueError):
        return None


def _start(obj: dict[str, Any]) -> datetime | None:
    value = obj.get("start_date_time")
    if value is None or value == "":
        return None
    when = moment(value)
    if when is None:
        raise EnvelopeError("appointment start_date_time must be an ISO-8601 date-time")
    return when


def _end(obj: dict[str, Any], start: datetime | None) -> datetime | None:
    duration = obj.get("duration_minutes")
    if duration is None:
        return None
    if not (isinstance(duration, int) and not isinstance(duration, bool)
            and 0 <= duration <= MAX_MINUTES):
        raise EnvelopeError("appointment duration_minutes must be a whole number of minutes")
    if start is None:
        return None
    try:
        return start + timedelta(minutes=duration)
    except OverflowError:
        raise EnvelopeError("appointment end is out of range") from None


__all__ = [
    "CANCELED",
    "MAX_MINUTES",
    "PROVIDER",
    "appointment_event",
    "appointment_id",
    "appointment_status",
    "is_appointment_id",
    "participants",
    "updated_at",
]
