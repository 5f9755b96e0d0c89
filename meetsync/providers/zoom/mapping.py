"""One Zoom meeting object (webhook, list row or ``GET /meetings/{id}``) as an ``Event``.

Each Zoom meeting is both the appointment and its meeting: ``appointment_id`` = meeting id =
``external_meeting_id`` = the numeric meeting id as text (``uuid`` names one instance of a
meeting and changes per occurrence: never a key,
https://developers.zoom.us/docs/api/meetings/).

What each source may say (``source``):

- ``fetch`` (``GET /meetings/{id}``): everything, credentials included. ``host_url`` is the
  ``start_url``, which Zoom lets live 2 h (its API reference, "Get a meeting"):
  ``host_url_expires_at`` = the stamp (``occurred_at``, taken before the request was sent)
  + ``ttl_seconds``. ``password`` is the meeting passcode; ``password_expires_at`` = end +
  24 h, the same retention SavvyCal gives its credentials (a guess: Zoom documents none; a
  passcode lives as long as the meeting).
- ``list`` (``GET /users/{id}/meetings`` rows): no ``start_url`` and no passcode. The Meeting it
  carries has ``host_url``/``password`` None meaning "not listed", never "none": such events
  belong in incomplete sweep pages (``SweepPage.complete=False``), compared, not applied.
- ``webhook``: Zoom never puts ``start_url`` in a webhook. A Meeting with ``host_url=None``
  would erase the one the mirror holds (the newest snapshot's meeting fields win), so webhook
  events carry ``meeting=None`` ("says nothing about the meeting"); the refetch fills it.
  Except ``meeting.created``: it carries the join URL and passcode, and no fetch can have
  seen the meeting before it was created, so its Meeting (without ``host_url``) erases
  nothing; the worker's credential refresh then fetches the start URL before it is needed.

Appointment status: ``scheduled`` (Zoom ``status`` ``waiting`` or absent), ``started``,
``ended`` (``meeting.ended``, a ``finished``/``ended`` status, or a fetched or listed
``waiting`` meeting past its scheduled end: after a meeting ends Zoom answers ``waiting``
again), ``deleted`` (``meeting.deleted``: gone, as an API 404 is; the mirror then detaches the
meeting, ``no_meeting``, serves no credential and reads the meeting ``canceled`` without a
join URL; ``meeting.recovered`` brings it back through a fetch). We use ``deleted``, not
``canceled``: Zoom has no canceled state, and the worker and reconciler already call an
appointment the API no longer knows ``deleted``.

Times: ``start_at`` = ``start_time`` (``...Z``; a naive value is read as UTC, a guess),
``end_at`` = start + ``duration`` minutes. ``meeting.ended`` also carries ``end_time`` (the
instance's actual end), preferred there. Lifecycle events carry the instance's ACTUAL start,
not the scheduled one: the mirror shows it until the next fetch. A meeting without a start
(type 3, recurring with no fixed time) has None, which says nothing: the mirror keeps the times
it knew (a meeting changed to type 3 keeps its old ones until a snapshot gives new ones).

Recurring meetings (types 8, 3) are one appointment each (one per meeting id); the
``occurrences`` they list become ``Event.occurrences`` (``occurrences()``): ``id`` =
``occurrence_id``, ``start_at`` = its ``start_time`` (normalised as above), ``end_at`` = start
+ its ``duration`` minutes, ``status`` as Zoom gives it (``available``, ``deleted``). Only a
full object says what they are: a fetched or listed one (list rows carry none in practice) and
``meeting.created``; an object without an ``occurrences`` key, or with one that is not a list,
says nothing (None); ``null`` says there are none. An entry without an ``occurrence_id`` is
skipped (it cannot be kept), later duplicates of an id too; an entry's unreadable start,
duration or status is None, never an error: the meeting's own fields still land.

Malformed objects raise ``EnvelopeError`` with a short message that quotes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from meetsync.events import Event, Meeting, Occurrence, from_micros
from meetsync.providers import EnvelopeError, moment
from meetsync.providers.parsing import iso, optional_text

PROVIDER = "zoom"
PASSWORD_GRACE = timedelta(hours=24)
CREATED = "meeting.created"

Source = Literal["webhook", "list", "fetch"]

_ID = re.compile(r"[0-9]{1,20}")
_LIFECYCLE = {"meeting.started": "started", "meeting.ended": "ended"}
_STATUS = {"waiting": "scheduled", "started": "started", "finished": "ended", "ended": "ended"}
_MAX_MINUTES = 60 * 24 * 366


def meeting_id(obj: dict[str, Any]) -> str:
    """``obj["id"]`` as text: a number in most payloads, a string in started/ended."""
    value = obj.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise EnvelopeError("meeting id must be a number or a string of digits")
    if not _ID.fullmatch(text):  # also keeps it safe inside an API path
        raise EnvelopeError("meeting id must be a number or a string of digits")
    return text


def meeting_event(
    obj: dict[str, Any],
    *,
    event_id: str,
    type: str,
    occurred_at: int,
    account: str,
    ttl_seconds: int,
    fetched: bool,
    listed: bool = False,
) -> Event:
    """The ``Event`` for one meeting object; ``fetched`` from ``GET /meetings/{id}``, else
    ``listed`` from a list page, else from a webhook (see the module docstring)."""
    if not isinstance(obj, dict):
        raise EnvelopeError("meeting must be an object")
    appointment_id = meeting_id(obj)
    start = _start(obj)
    end = _end(obj, start, prefer_end_time=type == "meeting.ended")
    status = _LIFECYCLE.get(type) or _status(obj.get("status"))
    source: Source = "fetch" if fetched else "list" if listed else "webhook"
    if status == "scheduled" and source != "webhook" and end is not None and (
            end <= from_micros(occurred_at)):
        # Zoom answers "waiting" again once a meeting ended: past its scheduled end, a meeting
        # the API calls waiting is over (else every sweep would undo meeting.ended).
        status = "ended"
    says = source != "webhook" or type == CREATED  # a full object
    meeting = _meeting(obj, appointment_id, source, occurred_at, ttl_seconds, end) if says else None
    return Event(
        id=event_id,
        provider=PROVIDER,
        type=type,
        occurred_at=occurred_at,
        appointment_id=appointment_id,
        appointment_status=status,
        start_at=iso(start, "meeting time"),
        end_at=iso(end, "meeting time"),
        meeting=meeting,
        account=account,
        occurrences=occurrences(obj) if says else None,
    )


def deleted_event(
    obj: dict[str, Any], *, event_id: str, type: str, occurred_at: int, account: str
) -> Event:
    """A meeting Zoom deleted: ``deleted``, no meeting (the mirror detaches it and serves no
    credential); the times the object gives, if any (``start_time`` is optional in Zoom's
    types: without, the mirror keeps the last known ones, so expiry and purges still work)."""
    if not isinstance(obj, dict):
        raise EnvelopeError("meeting must be an object")
    start = _start(obj)
    return Event(
        id=event_id,
        provider=PROVIDER,
        type=type,
        occurred_at=occurred_at,
        appointment_id=meeting_id(obj),
        appointment_status="deleted",
        start_at=iso(start, "meeting time"),
        end_at=iso(_end(obj, start, prefer_end_time=False), "meeting time"),
        no_meeting=True,
        account=account,
    )


def occurrences(obj: dict[str, Any]) -> tuple[Occurrence, ...] | None:
    """The occurrences a recurring meeting object lists; None when it says nothing (see the
    module docstring)."""
    if "occurrences" not in obj:
        return None
    listed = obj["occurrences"]
    if listed is None:
        return ()
    if not isinstance(listed, list):
        return None
    found: dict[str, Occurrence] = {}
    for item in listed:
        if not isinstance(item, dict):
            continue
        occurrence_id = item.get("occurrence_id")
        if isinstance(occurrence_id, int) and not isinstance(occurrence_id, bool):
            occurrence_id = str(occurrence_id)
        if not isinstance(occurrence_id, str) or not occurrence_id or occurrence_id in found:
            continue
        start = moment(item.get("start_time"))
        duration = item.get("duration")
        end = None
        if start is not None and isinstance(duration, int) and _minutes(duration):
            try:
                end = start + timedelta(minutes=duration)
            except OverflowError:
                end = None
        status = item.get("status")
        found[occurrence_id] = Occurrence(
            id=occurrence_id,
            start_at=_lenient_iso(start),
            end_at=_lenient_iso(end),
            status=status if isinstance(status, str) and status else None,
        )
    return tuple(found.values())


def _lenient_iso(moment: datetime | None) -> str | None:
    try:
        return iso(moment, "meeting time")
    except EnvelopeError:
        return None


def _meeting(
    obj: dict[str, Any], appointment_id: str, source: Source, occurred_at: int, ttl_seconds: int,
    end: datetime | None,
) -> Meeting:
    join_url = optional_text(obj, "join_url", "meeting")
    host_url = password = host_expires = password_expires = None
    if source == "fetch":
        host_url = optional_text(obj, "start_url", "meeting")
        if host_url is not None:
            expires = from_micros(occurred_at) + timedelta(seconds=ttl_seconds)
            host_expires = iso(expires, "meeting time")
    if source != "list":
        password = optional_text(obj, "password", "meeting")
        if password is not None and end is not None:
            password_expires = iso(end + PASSWORD_GRACE, "meeting time")
    return Meeting(
        id=appointment_id,
        status="created",
        conferencing_provider=PROVIDER,
        external_meeting_id=appointment_id,
        join_url=join_url,
        host_url=host_url,
        password=password,
        host_url_expires_at=host_expires,
        password_expires_at=password_expires,
    )


def _status(value: object) -> str:
    if value is None:
        return "scheduled"
    if not isinstance(value, str):
        raise EnvelopeError("meeting status must be a string")
    return _STATUS.get(value, "scheduled")


def _start(obj: dict[str, Any]) -> datetime | None:
    value = obj.get("start_time")
    if value is None or value == "":
        return None
    when = moment(value)
    if when is None:
        raise EnvelopeError("meeting start_time must be an ISO-8601 date-time")
    return when


def _end(obj: dict[str, Any], start: datetime | None, *, prefer_end_time: bool) -> datetime | None:
    if prefer_end_time and obj.get("end_time") not in (None, ""):
        when = moment(obj.get("end_time"))
        if when is None:
            raise EnvelopeError("meeting end_time must be an ISO-8601 date-time")
        return when
    duration = obj.get("duration")
    if duration is None:
        return None
    if not _minutes(duration):
        raise EnvelopeError("meeting duration must be a whole number of minutes")
    if start is None:
        return None
    try:
        return start + timedelta(minutes=duration)
    except OverflowError:
        raise EnvelopeError("meeting end is out of range") from None


def _minutes(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= _MAX_MINUTES)


__all__ = [
    "PASSWORD_GRACE",
    "PROVIDER",
    "deleted_event",
    "meeting_event",
    "meeting_id",
    "occurrences",
]
