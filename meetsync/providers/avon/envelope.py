"""Avon Health's webhook envelope: every appointment event is a ``Hint``.

Avon documents no signing scheme (docs.avonhealth.com "Webhooks": endpoints are registered by
email with an Avon contact), so a delivery cannot be trusted as data: it only says which
appointment to fetch through the authenticated API. A forged delivery costs at most one fetch
and never writes anything the API did not return.

The documented shapes (doc versions differ)::

    {"event": "appointment.created", "created_at": "2024-02-22T20:09:46.206Z",
     "object": {"id": "appt_...", ...}}
    {"event": "appointment.created", "created_at": 1653798303000, "object": {...}}
    {"id": "wbhk_edqhVXeQ1yPxw3JDJl2C", "event": "appointment.updated", "object": {...}}

Event names vary across versions: ``appointment.created``, ``.updated``, ``.started``,
``.in_progress``, ``.completed``, ``.cancelled``, ``.rescheduled``. Any ``appointment.*`` is a
hint (a new name needs no release); any other event (``patient.created``...) is its type name,
ignored. We also read, defensively, the appointment id at ``data.object.id``, ``data.id``,
``appointment_id`` and ``data.appointment_id`` (not documented: guesses at shapes other
providers use), and ``type`` when ``event`` is missing. ``created_at`` and ``id`` are not
needed by a hint and are not checked.

The id must look like ``appt_\\w+``: it goes into an API path. An appointment event without
one, or anything that is not a JSON object, is an ``EnvelopeError`` whose message never quotes
the body.
"""

from __future__ import annotations

from typing import Any

import orjson

from meetsync.providers import EnvelopeError, Hint
from meetsync.providers.avon.mapping import appointment_id

APPOINTMENT_PREFIX = "appointment."
_MAX_TYPE = 100

# Where each doc version (or a guess) puts the appointment id, in order of preference.
_ID_PATHS: tuple[tuple[str, ...], ...] = (
    ("object", "id"),
    ("data", "object", "id"),
    ("data", "id"),
    ("appointment_id",),
    ("data", "appointment_id"),
    ("object", "appointment_id"),
)


def parse_envelope(body: bytes, *, account: str) -> Hint | str:
    """What a delivery to ``account`` says: a ``Hint`` or an ignored event type."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EnvelopeError("body is not JSON") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("envelope must be a JSON object")
    event_type = envelope.get("event", envelope.get("type"))
    if (not isinstance(event_type, str) or not event_type or len(event_type) > _MAX_TYPE
            or not (event_type.isascii() and event_type.isprintable())):
        raise EnvelopeError("event must be a short non-empty string")
    if not event_type.startswith(APPOINTMENT_PREFIX):
        return event_type
    found = _appointment_id(envelope)
    if found is None:
        raise EnvelopeError("appointment event without an appointment id")
    return Hint(appointment_id=appointment_id(found), account=account, type=event_type)


def _appointment_id(envelope: dict[str, Any]) -> object:
    for path in _ID_PATHS:
        node: object = envelope
        for name in path:
            node = node.get(name) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


__all__ = ["APPOINTMENT_PREFIX", "parse_envelope"]
