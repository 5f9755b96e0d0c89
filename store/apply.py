"""Guarded writes: apply provider-neutral events to the mirror, idempotently, in any order.

The mirror's state is a function of the *set* of events seen, not of their arrival order:

- an event id already in the inbox (``events``) changes nothing;
- each row keeps the ``(occurred_at, event id)`` of the snapshot it reflects and the upserts
  below only land when the incoming pair is greater — stale writes are rejected in SQL;
- on an exact ``occurred_at`` tie the event id decides (deterministically), and the appointment
  is flagged (``tie_at``) so a refetch from the provider settles what really happened: an
  update is never dropped silently;
- an appointment's meetings form a chain ordered by when each was first seen (a replacement
  always creates a brand-new meeting id, seeds/001): each meeting's ``replaced_by`` is the next
  one, the last is current, and a superseded meeting never becomes current again, nor keeps a
  ``host_url`` or ``password``.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from meetsync.events import Event, Meeting
from meetsync.store.schema import NOW_SQL

_INBOX = f"""
INSERT INTO events (id, appointment_id, type, occurred_at, outcome, applied_at)
VALUES (?, ?, ?, ?, 'applied', {NOW_SQL})
ON CONFLICT (id) DO NOTHING
"""

_APPOINTMENT = f"""
INSERT INTO appointments
    (id, provider, status, start_at, end_at, version_at, version_event, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, {NOW_SQL})
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status,
    start_at = excluded.start_at,
    end_at = excluded.end_at,
    tie_at = CASE WHEN appointments.version_at = excluded.version_at
                  THEN excluded.version_at END,
    version_at = excluded.version_at,
    version_event = excluded.version_event,
    updated_at = excluded.updated_at
WHERE (excluded.version_at, excluded.version_event)
    > (appointments.version_at, appointments.version_event)
RETURNING tie_at
"""

# The losing side of a tie: the stored snapshot has the same instant and a greater event id.
_TIE = """
UPDATE appointments SET tie_at = version_at
WHERE id = ? AND version_at = ? AND version_event > ?
"""

_STALE = "UPDATE events SET outcome = 'stale' WHERE id = ?"

_MEETING = f"""
INSERT INTO meetings
    (id, appointment_id, status, conferencing_provider, external_meeting_id, join_url,
     host_url, password, error_message, first_seen_at, first_seen_rank,
     version_at, version_event, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, {NOW_SQL})
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status,
    conferencing_provider = excluded.conferencing_provider,
    external_meeting_id = excluded.external_meeting_id,
    join_url = excluded.join_url,
    host_url = CASE WHEN meetings.replaced_by IS NULL THEN excluded.host_url END,
    password = CASE WHEN meetings.replaced_by IS NULL THEN excluded.password END,
    error_message = excluded.error_message,
    version_at = excluded.version_at,
    version_event = excluded.version_event,
    updated_at = excluded.updated_at
WHERE (excluded.version_at, excluded.version_event)
    > (meetings.version_at, meetings.version_event)
RETURNING first_seen_at, first_seen_rank
"""

# A meeting seen earlier than we knew (late delivery): move it back in the chain.
_FIRST_SEEN = """
UPDATE meetings SET first_seen_at = ?, first_seen_rank = ?
WHERE id = ? AND (first_seen_at, first_seen_rank) > (?, ?)
"""

# A replaced event names the old meeting: known by id only, it sorts just before the new one.
_PREDECESSOR = f"""
INSERT INTO meetings
    (id, appointment_id, first_seen_at, first_seen_rank, version_at, version_event, updated_at)
VALUES (?, ?, ?, 0, 0, '', {NOW_SQL})
ON CONFLICT (id) DO NOTHING
"""

_CHAIN = """
SELECT id, replaced_by FROM meetings WHERE appointment_id = ?
ORDER BY first_seen_at, first_seen_rank, id
"""

_SUPERSEDE = f"""
UPDATE meetings SET replaced_by = ?, host_url = NULL, password = NULL, updated_at = {NOW_SQL}
WHERE id = ?
"""

_CURRENT = f"""
UPDATE appointments SET meeting_id = ?, updated_at = {NOW_SQL}
WHERE id = ? AND meeting_id IS NOT ?
"""


@dataclass
class ApplyResult:
    """What one batch did."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    ties: set[str] = field(default_factory=set)

    def add(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.stale += other.stale
        self.ties |= other.ties


def apply_events(conn: sqlite3.Connection, events: Iterable[Event]) -> ApplyResult:
    """Apply events inside the caller's transaction; returns what happened."""
    result = ApplyResult()
    touched: set[str] = set()
    for event in events:
        if _apply_one(conn, event, result):  # the appointment's chain may have changed
            touched.add(event.appointment_id)
    for appointment_id in touched:
        _resolve_chain(conn, appointment_id)
    return result


def _apply_one(conn: sqlite3.Connection, event: Event, result: ApplyResult) -> bool:
    fresh = conn.execute(
        _INBOX, (event.id, event.appointment_id, event.type, event.occurred_at)
    ).rowcount
    if not fresh:
        result.duplicates += 1
        return False
    result.applied += 1
    landed = conn.execute(
        _APPOINTMENT,
        (
            event.appointment_id,
            event.provider,
            event.appointment_status,
            event.start_at,
            event.end_at,
            event.occurred_at,
            event.id,
        ),
    ).fetchone()
    if landed is None:
        result.stale += 1
        conn.execute(_STALE, (event.id,))
        tied = conn.execute(_TIE, (event.appointment_id, event.occurred_at, event.id)).rowcount > 0
    else:
        tied = landed[0] is not None
    if tied:
        result.ties.add(event.appointment_id)
    chain_changed = False
    if event.previous_meeting_id and event.previous_meeting_id != _meeting_id(event.meeting):
        chain_changed |= conn.execute(
            _PREDECESSOR, (event.previous_meeting_id, event.appointment_id, event.occurred_at)
        ).rowcount > 0
        chain_changed |= _seen(conn, event.previous_meeting_id, event.occurred_at, 0)
    if event.meeting is not None:
        chain_changed |= _upsert_meeting(conn, event, event.meeting)
    return chain_changed


def _upsert_meeting(conn: sqlite3.Connection, event: Event, meeting: Meeting) -> bool:
    """Write the meeting; True when its place in the chain may have changed."""
    row = conn.execute(
        _MEETING,
        (
            meeting.id,
            event.appointment_id,
            meeting.status,
            meeting.conferencing_provider,
            meeting.external_meeting_id,
            meeting.join_url,
            meeting.host_url,
            meeting.password,
            meeting.error_message,
            event.occurred_at,
            event.occurred_at,
            event.id,
        ),
    ).fetchone()
    if row is not None and (row[0], row[1]) < (event.occurred_at, 1):
        return False  # a known meeting, first seen earlier: the common update, chain untouched
    if row is not None and (row[0], row[1]) == (event.occurred_at, 1):
        return True  # just inserted (or first seen at this very instant): place it
    return _seen(conn, meeting.id, event.occurred_at, 1)  # a stale write may move it earlier


def _seen(conn: sqlite3.Connection, meeting_id: str, at: int, rank: int) -> bool:
    return conn.execute(_FIRST_SEEN, (at, rank, meeting_id, at, rank)).rowcount > 0


def _meeting_id(meeting: Meeting | None) -> str | None:
    return meeting.id if meeting else None


def _resolve_chain(conn: sqlite3.Connection, appointment_id: str) -> None:
    chain = conn.execute(_CHAIN, (appointment_id,)).fetchall()
    if not chain:
        return
    for (meeting_id, replaced_by), (successor, _) in itertools.pairwise(chain):
        if replaced_by != successor:
            conn.execute(_SUPERSEDE, (successor, meeting_id))
    conn.execute(_CURRENT, (chain[-1][0], appointment_id, chain[-1][0]))
