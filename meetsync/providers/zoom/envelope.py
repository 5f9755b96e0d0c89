"""Zoom's webhook envelope, turned into what the seam's receiver acts on.

Envelope (https://developers.zoom.us/docs/api/webhooks/ and zoom/rivet-javascript
``meetings/meetings.d.ts``)::

    {"event": "meeting.created", "event_ts": 1740841200123,
     "payload": {"account_id": "...", "operator": "...", "object": {"id": 85746065432, ...},
                 "old_object": {...}, "time_stamp": ...}}

What each event becomes:

- ``endpoint.url_validation`` (``payload.plainToken``): ``UrlValidation``, which the receiver's
  half answers with the secret token that signed the request. Zoom signs these requests like
  any other (its sample app verifies the signature before answering; a guess we rely on): an
  unsigned one is refused at ``verify``. Answering unsigned challenges would be a signing
  oracle: anyone could have us HMAC ``v0:{timestamp}:{body}`` of their choosing.
- ``meeting.created``, ``meeting.started``, ``meeting.ended``: an ``Event`` (``meeting=None``:
  webhooks never carry ``start_url``, see ``mapping``; ``meeting.created``, the full object,
  also says the meeting and a recurring meeting's ``occurrences``). One without ``start_time`` is a
  ``Hint``: we cannot tell "no start" (type 3) from "not said"; a fetch says.
- ``meeting.deleted``, ``meeting.permanently_deleted``: an ``Event`` (``deleted``, no meeting;
  without ``start_time`` it says nothing of times and the mirror keeps its last known ones),
  unless ``object.occurrences`` lists occurrences: then only those occurrences went, the
  meeting stays, and it is a ``Hint``.
- ``meeting.updated`` (a partial: only the changed fields, plus ``old_object``) and
  ``meeting.recovered``: a ``Hint``. A partial update triggers a full fetch, never a write.
- any other event: its type name (ignored, counted).

Zoom bodies carry no event id. Ours is ``zoom:{event}:{meeting id}:{event_ts}``: a redelivery
of the same body (Zoom retries at +5, +20 and +60 minutes with the same body) is a duplicate.
``occurred_at`` is ``event_ts`` (milliseconds) in microseconds.

``event_ts`` is optional in ``meeting.deleted`` alone (rivet-javascript's ``MeetingDeletedEvent``
has ``event_ts?: number``; every other meeting event requires it): one without is ordered at
its receipt (``UNDATED``, see ``meetsync.events.received``), its id names a digest of the body
instead (``zoom:meeting.deleted:{meeting id}:sha256-{hex}``), so a retried body is still a
duplicate. Another event without ``event_ts`` is refused.

Unknown fields are ignored. Anything else wrong is an ``EnvelopeError`` whose message never
quotes the body.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from meetsync.events import UNDATED, Event
from meetsync.providers import EnvelopeError, Hint
from meetsync.providers.zoom.mapping import deleted_event, meeting_event, meeting_id

URL_VALIDATION = "endpoint.url_validation"
SNAPSHOTS = frozenset({"meeting.created", "meeting.started", "meeting.ended"})
DELETIONS = frozenset({"meeting.deleted", "meeting.permanently_deleted"})
HINTS = frozenset({"meeting.updated", "meeting.recovered"})
UNDATED_OK = frozenset({"meeting.deleted"})  # event_ts optional (rivet-javascript's types)

_MAX_EVENT_TS = 10**15  # milliseconds: year ~33658; beyond is nonsense
_MAX_PLAIN_TOKEN = 256


@dataclass(frozen=True, slots=True)
class UrlValidation:
    """An ``endpoint.url_validation`` challenge: answer ``url_validation_reply(plain_token)``."""

    plain_token: str


def parse_envelope(body: bytes, *, account: str) -> Event | Hint | UrlValidation | str:
    """What a verified delivery to ``account`` says (see the module docstring)."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EnvelopeError("body is not JSON") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("envelope must be a JSON object")
    event_type = envelope.get("event")
    if not isinstance(event_type, str) or not event_type:
        raise EnvelopeError("event must be a non-empty string")
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise EnvelopeError("payload must be an object")
    if event_type == URL_VALIDATION:
        return UrlValidation(_plain_token(payload.get("plainToken")))
    if event_type not in SNAPSHOTS | DELETIONS | HINTS:
        return event_type
    obj = payload.get("object")
    if not isinstance(obj, dict):
        raise EnvelopeError("payload.object must be an object")
    appointment_id = meeting_id(obj)
    event_ts = envelope.get("event_ts")
    if event_ts is None and event_type in UNDATED_OK:
        stamp, occurred_at = f"sha256-{hashlib.sha256(body).hexdigest()[:32]}", UNDATED
    elif (not isinstance(event_ts, int) or isinstance(event_ts, bool)
            or not 0 <= event_ts <= _MAX_EVENT_TS):
        raise EnvelopeError("event_ts must be a time in milliseconds")
    else:
        stamp, occurred_at = str(event_ts), event_ts * 1000
    hint = Hint(appointment_id=appointment_id, account=account, type=event_type)
    if event_type in HINTS:
        return hint
    event_id = f"zoom:{event_type}:{appointment_id}:{stamp}"
    if event_type in DELETIONS:
        if obj.get("occurrences"):
            return hint
        return deleted_event(obj, event_id=event_id, type=event_type, occurred_at=occurred_at,
                             account=account)
    if obj.get("start_time") in (None, ""):
        return hint
    return meeting_event(obj, event_id=event_id, type=event_type, occurred_at=occurred_at,
                         account=account, ttl_seconds=0, fetched=False)


def _plain_token(value: object) -> str:
    if (not isinstance(value, str) or not value or len(value) > _MAX_PLAIN_TOKEN
            or not (value.isascii() and value.isprintable())):
        raise EnvelopeError("payload.plainToken must be a short printable string")
    return value


__all__ = ["DELETIONS", "HINTS", "SNAPSHOTS", "UNDATED_OK", "URL_VALIDATION", "UrlValidation",
           "parse_envelope"]
