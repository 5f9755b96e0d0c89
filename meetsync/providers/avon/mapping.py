"""Avon Health appointments → provider-neutral ``Event`` snapshots.

The appointment model (docs.avonhealth.com, "Appointment"): ``id`` (``appt_...``),
``object: "appointment"``, ``start_time``/``end_time``, ``host``, ``attendees``,
``interaction_type`` (``video_call`` | ``in_person``), ``video_call {join_url, meeting_id}``,
``status_history [{status, changed_by, changed_at}]``, ``created_at``, ``last_updated_at``.
Only the API's objects are mapped: webhook deliveries are hints (``envelope``).

Fields, and the guesses behind them:

- ``appointment_id`` = ``id``; it must look like ``appt_\\w+`` (ASCII, at most 64): it goes
  into an API path.
- Status: the LAST entry of ``status_history`` (Avon appends; we do not re-sort by
  ``changed_at``, which may tie or be missing). ``cancelled`` becomes ours, ``canceled``; every
  other status is kept lower-case as given (the docs show ``scheduled``; ``confirmed``,
  ``in_progress``, ``completed``, ``no_show``... are guesses from the webhook event names). An
  empty or missing history says nothing: ``appointment_status`` None.
- Times: ``start_time``/``end_time`` are epoch MILLISECONDS (a number) in one doc version and
  ISO-8601 date-times in a newer one: both are read (a naive date-time is UTC, a guess; a
  string of digits is milliseconds) and written as ``YYYY-MM-DDTHH:MM:SSZ``.
- Ordering: ``occurred_at`` = ``last_updated_at`` (epoch ms, or ISO as the times may be) in µs
  when present, else the stamp taken before the request was sent. Every Avon snapshot comes
  from the API, so they all order by Avon's own clock; two fetches of an unchanged appointment
  tie, and the event id (which carries the fetch) settles the tie between equal snapshots.
- Meeting: for ``interaction_type == "video_call"`` with ``video_call.join_url`` or
  ``meeting_id``: ``Meeting(id=f"{appointment_id}:{meeting_id}")``, ``conferencing_provider``
  ``zoom`` (Avon: "each appointment has a unique Zoom url link"), ``external_meeting_id`` the
  Zoom meeting id, ``join_url``; no ``host_url`` or ``password`` (Avon gives none). The id joins
  the appointment's and the Zoom meeting's: unique per appointment even if two appointments
  ever shared a Zoom meeting, and a new Zoom meeting for the same appointment is a new meeting
  that replaces the old (the mirror's ``replaced_by`` chain). Without a ``meeting_id`` the
  meeting is ``f"{appointment_id}:video"``. Its status is ``canceled`` when the appointment is,
  else ``created``.
- ``video_call`` without a join URL or meeting id (not set up yet): ``meeting=None``, the
  snapshot says nothing about a meeting. ``interaction_type`` missing: says nothing either.
  Any other interaction type (``in_person``, or one the docs do not list): the appointment has
  no video meeting, ``no_meeting=True`` (one switched from video to in person loses its link).
- Participants: the ``host`` (role ``host``) and each attendee's ``id`` (role ``attendee``);
  malformed entries are skipped.

Malformed objects raise ``EnvelopeError`` with a short message that never quotes a value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from meetsync.events import Event, Meeting, Participant
from meetsync.providers import EnvelopeError
from meetsync.providers.parsing import iso

PROVIDER = "avon"
CONFERENCING_PROVIDER = "zoom"

APPOINTMENT_ID = re.compile(r"appt_\w{1,59}", re.ASCII)
_MEETING_ID = re.compile(r"[\w.-]{1,64}", re.ASCII)
_STATUS = {"cancelled": "canceled"}
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def appointment_id(value: object) -> str:
    """``value`` if it is an Avon appointment id (``appt_\\w+``), else ``EnvelopeError``."""
    if not isinstance(value, str) or not APPOINTMENT_ID.fullmatch(value):
        raise EnvelopeError("appointment id must look like appt_...")
    return value


def appointment_event(
    obj: object, *, event_id: str, type: str, occurred_at: int, account: str,
) -> Event:
    """The ``Event`` for one appointment object from the API; ``occurred_at`` (µs) is the stamp
    taken before its request was sent, used when the object has no ``last_updated_at``."""
    if not isinstance(obj, dict):
        raise EnvelopeError("appointment must be an object")
    kind = obj.get("object")
    if kind is not None and kind != "appointment":
        raise EnvelopeError("object is not an appointment")
    found_id = appointment_id(obj.get("id"))
    status = _status(obj.get("status_history"))
    updated = _moment(obj.get("last_updated_at"), "last_updated_at")
    meeting, no_meeting = _meeting(obj, found_id, canceled=status == "canceled")
    return Event(
        id=event_id,
        provider=PROVIDER,
        type=type,
        occurred_at=_micros(updated) if updated is not None else occurred_at,
        appointment_id=found_id,
        appointment_status=status,
        start_at=iso(_moment(obj.get("start_time"), "start_time"), "appointment time"),
        end_at=iso(_moment(obj.get("end_time"), "end_time"), "appointment time"),
        meeting=meeting,
        no_meeting=no_meeting,
        account=account,
        participants=_participants(obj),
    )


def _status(history: object) -> str | None:
    if history is None:
        return None
    if not isinstance(history, list):
        raise EnvelopeError("status_history must be a list")
    if not history:
        return None
    last = history[-1]
    if not isinstance(last, dict):
        raise EnvelopeError("status_history entries must be objects")
    status = last.get("status")
    if not isinstance(status, str) or not status.strip():
        raise EnvelopeError("status_history status must be a non-empty string")
    status = status.strip().lower()
    return _STATUS.get(status, status)


def _meeting(obj: dict[str, Any], found_id: str, *, canceled: bool) -> tuple[Meeting | None, bool]:
    """The meeting and ``no_meeting`` (see the module docstring)."""
    interaction = obj.get("interaction_type")
    if interaction is None:
        return None, False
    if not isinstance(interaction, str):
        raise EnvelopeError("interaction_type must be a string")
    if interaction != "video_call":
        return None, True
    details = obj.get("video_call")
    if details is None:
        return None, False
    if not isinstance(details, dict):
        raise EnvelopeError("video_call must be an object")
    join_url = details.get("join_url")
    if join_url in (None, ""):
        join_url = None
    elif not isinstance(join_url, str):
        raise EnvelopeError("video_call join_url must be a string")
    external = details.get("meeting_id")
    if isinstance(external, int) and not isinstance(external, bool) and external >= 0:
        external = str(external)
    if external in (None, ""):
        external = None
    elif not isinstance(external, str) or not _MEETING_ID.fullmatch(external):
        raise EnvelopeError("video_call meeting_id must be a short id")
    if join_url is None and external is None:
        return None, False
    return Meeting(
        id=f"{found_id}:{external or 'video'}",
        status="canceled" if canceled else "created",
        conferencing_provider=CONFERENCING_PROVIDER,
        external_meeting_id=external,
        join_url=join_url,
    ), False


def _participants(obj: dict[str, Any]) -> tuple[Participant, ...] | None:
    host, attendees = obj.get("host"), obj.get("attendees")
    if host is None and attendees is None:
        return None
    found: list[Participant] = []
    if isinstance(host, str) and host:
        found.append(Participant(id=host, role="host"))
    for attendee in attendees if isinstance(attendees, list) else ():
        if isinstance(attendee, dict) and isinstance(attendee.get("id"), str) and attendee["id"]:
            found.append(Participant(id=attendee["id"], role="attendee"))
        elif isinstance(attendee, str) and attendee:  # the create call's "array of strings"
            found.append(Participant(id=attendee, role="attendee"))
    return tuple(found)


def parse_moment(value: object) -> datetime | None:
    """An aware datetime from epoch milliseconds (a number or a string of digits) or ISO-8601
    text (naive is UTC); None for None or ``""``; ``ValueError`` for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and 0 <= value <= _MAX_MS):
            raise ValueError("time out of range")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 15:
            return parse_moment(int(text))
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    raise ValueError("not a time")


def _moment(value: object, name: str) -> datetime | None:
    try:
        return parse_moment(value)
    except (ValueError, OverflowError, OSError):
        raise EnvelopeError(f"{name} must be epoch milliseconds or an ISO-8601 date-time") from None


def _micros(moment: datetime) -> int:
    # Whole milliseconds, as Avon sends them: no float noise below the millisecond.
    try:
        micros = round(moment.timestamp() * 1000) * 1000
    except (OverflowError, ValueError, OSError):
        micros = -1
    if micros < 0:
        raise EnvelopeError("last_updated_at is out of range")
    return micros


__all__ = ["APPOINTMENT_ID", "PROVIDER", "appointment_event", "appointment_id", "parse_moment"]
