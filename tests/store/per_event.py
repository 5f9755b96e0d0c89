"""The oracle of ``tests/store/test_fold_equivalence.py``: the mirror's writes as they were
before ``store/fold.py``, each event applied with its own statements (``apply_events``), kept
unchanged so the folded apply is pinned to it. The rules are those stated below.

The mirror's state is a function of the *set* of events seen, not of their arrival order:

- an event id already in the inbox (``events``) changes nothing;
- an appointment belongs to the account it was first received under: ``appointments.account``
  is the account of the first of its events applied (written with the row, never overwritten).
  An event from another account for it changes nothing but its own inbox row (outcome
  ``account_conflict``, with the sending ``account``): a secret proves an account, not a
  right to another account's appointments. So the rows are those the owner's events alone
  would make, in any order; which account owns an id two accounts both send is the one whose
  event was applied first (the one order-dependent fact, and only across accounts). A row
  from before m010 (``owner_known`` 0) is owned by the account of the first event that lands
  on it;
- each row keeps the ``(occurred_at, event id)`` of the snapshot it reflects and the upserts
  below only land when the incoming pair is greater — stale writes are rejected in SQL;
- on an exact ``occurred_at`` tie the event id decides (deterministically), and the appointment
  is flagged (``tie_at``) so a refetch from the provider settles what really happened: an
  update is never dropped silently;
- an appointment's meetings form a chain ordered by when each was first seen (a replacement
  always creates a brand-new meeting id, docs/providers.md): each meeting's ``replaced_by``
  is the next one, the last is current, and a superseded meeting never becomes current again;
- absence is a state: when the appointment's newest snapshot says it has no meeting, its
  ``meeting_id`` is NULL until a newer snapshot attaches one again;
- only the meeting the newest snapshot names keeps a ``host_url`` and ``password``;
- an appointment's times are those of the newest snapshot that gives any (their own pair,
  ``times_at``/``times_event``): one that gives none says nothing about them (a deletion
  without times keeps the last known schedule);
- an appointment's participants are those of the newest snapshot that lists them (its own
  ``(occurred_at, event id)`` pair, ``participants_at``/``participants_event``, guards the set
  apart from the appointment's fields: a snapshot that says nothing about them is no newer
  word on them); a recurring appointment's occurrences likewise, under their own pair
  (``occurrences_at``/``occurrences_event``);
- each credential dies at its own expiry (``host_url_expires_at``, ``password_expires_at``: the
  provider package's word, carried by the meeting's snapshot); one dead on arrival (expiry at or
  before ``now``) is never written.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from meetsync.events import Event, Meeting, Occurrence, Participant, iso_utc
from meetsync.store.apply import ACCOUNT_CONFLICT, AccountConflict, ApplyResult, Conflict
from meetsync.store.schema import NOW_SQL

# The inbox row says, as it is written, whether the event may be applied: not when another
# account owns its appointment (the outcome is then 'account_conflict' and nothing else is
# written). No row back: a duplicate.
_INBOX = f"""
INSERT INTO events
    (id, provider, appointment_id, type, occurred_at, claimed_at, account, outcome, applied_at)
VALUES (:id, :provider, :appointment, :type, :at, :claimed_at, :account,
        CASE WHEN EXISTS (SELECT 1 FROM appointments WHERE provider = :provider
                          AND id = :appointment AND owner_known = 1 AND account <> :account)
             THEN '{ACCOUNT_CONFLICT}' ELSE 'applied' END,
        {NOW_SQL})
ON CONFLICT (provider, id) DO NOTHING
RETURNING outcome
"""

_OWNER_OF = "SELECT account FROM appointments WHERE provider = ? AND id = ?"

# account: the owner, set when the row is inserted and never changed (a row from before m010,
# owner_known 0, takes the account of the first event that lands on it).
# no_meeting: 1 the snapshot says there is none, 0 it names one (named_meeting_id); when it does
# not say (the last two parameters NULL) both keep what the mirror knew.
# times_at/times_event: the snapshot's pair when it gives times, else NULL: it says nothing about
# them and the mirror keeps those it knew (see _TIMES).
_APPOINTMENT = f"""
INSERT INTO appointments
    (id, provider, account, status, start_at, end_at, version_at, version_event, no_meeting,
     named_meeting_id, times_at, times_event, owner_known, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, {NOW_SQL})
ON CONFLICT (provider, id) DO UPDATE SET
    account = CASE WHEN appointments.owner_known = 1 THEN appointments.account
                   ELSE excluded.account END,
    owner_known = 1,
    status = excluded.status,
    start_at = CASE WHEN excluded.times_at IS NULL THEN appointments.start_at
                    ELSE excluded.start_at END,
    end_at = CASE WHEN excluded.times_at IS NULL THEN appointments.end_at
                  ELSE excluded.end_at END,
    times_at = COALESCE(excluded.times_at, appointments.times_at),
    times_event = COALESCE(excluded.times_event, appointments.times_event),
    tie_at = CASE WHEN appointments.version_at = excluded.version_at
                  THEN excluded.version_at END,
    version_at = excluded.version_at,
    version_event = excluded.version_event,
    no_meeting = COALESCE(?, appointments.no_meeting),
    named_meeting_id = CASE WHEN CAST(? AS INTEGER) IS NULL THEN appointments.named_meeting_id
                            ELSE excluded.named_meeting_id END,
    updated_at = excluded.updated_at
WHERE (excluded.version_at, excluded.version_event)
    > (appointments.version_at, appointments.version_event)
RETURNING tie_at, meeting_id, no_meeting
"""

# A snapshot that gives times but is older than the appointment's newest: its times still apply
# if no newer snapshot gave any (a newer one that landed always is the newest that did).
_TIMES = """
UPDATE appointments SET start_at = :start_at, end_at = :end_at, times_at = :at,
    times_event = :event
WHERE provider = :provider AND id = :appointment
  AND (times_at IS NULL OR (:at, :event) > (times_at, times_event))
"""

# The losing side of a tie: the stored snapshot has the same instant and a greater event id.
_TIE = """
UPDATE appointments SET tie_at = version_at
WHERE provider = ? AND id = ? AND version_at = ? AND version_event > ?
"""

class Connection(Protocol):
    """What the writes need of a connection: ``sqlite3.Connection``, or the PostgreSQL one
    (``store/postgres.py``) that translates the same statements."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class _ListedSet:
    """The statements that make a listed set (participants, occurrences) the appointment's:
    ``claim`` it for the snapshot when the snapshot is newer than the one that set it (the
    set's own version: ``{table}_at``/``{table}_event`` on the appointment), delete the
    members ``gone`` from it, ``upsert`` the rest (an unchanged member is left alone: the
    change log records real changes only)."""

    claim: str
    gone: str
    upsert: str
    fields: tuple[str, ...]


def _listed_set(table: str, fields: tuple[str, ...]) -> _ListedSet:
    columns = ", ".join(fields)
    values = ", ".join(f":{name}" for name in fields)
    return _ListedSet(
        claim=f"""
UPDATE appointments SET {table}_at = :at, {table}_event = :event
WHERE provider = :provider AND id = :appointment
  AND ({table}_at IS NULL OR (:at, :event) > ({table}_at, {table}_event))
""",
        gone=f"""
DELETE FROM {table}
WHERE provider = :provider AND appointment_id = :appointment
  AND id NOT IN (SELECT value FROM json_each(:ids))
""",
        upsert=f"""
INSERT INTO {table} (provider, appointment_id, id, {columns}, updated_at)
VALUES (:provider, :appointment, :id, {values}, {NOW_SQL})
ON CONFLICT (provider, appointment_id, id) DO UPDATE SET
    {", ".join(f"{name} = excluded.{name}" for name in fields)},
    updated_at = excluded.updated_at
WHERE {" OR ".join(f"{table}.{name} IS NOT excluded.{name}" for name in fields)}
""",
        fields=fields,
    )


_PARTICIPANTS = _listed_set("participants", ("role", "unique_id", "display_name"))
_OCCURRENCES = _listed_set("occurrences", ("start_at", "end_at", "status"))

_STALE = "UPDATE events SET outcome = 'stale' WHERE provider = ? AND id = ?"

# Credentials are kept by one meeting at most: the one the appointment's newest snapshot names
# (:named; that snapshot is then the meeting's newest too, so its credentials are the provider's
# last word), unless a replacement named it as the meeting replaced (``predecessor``, known only
# if the row exists), and each only until its own expiry. A function of the set of events,
# whatever order or batches.
def _live(credential: str) -> str:
    expires = f":{credential}_expires_at"
    return (f"CASE WHEN :named AND (CAST({expires} AS TEXT) IS NULL OR {expires} > :now)"
            f" THEN :{credential} END")


_MEETING = f"""
INSERT INTO meetings
    (id, provider, appointment_id, status, conferencing_provider, external_meeting_id, join_url,
     host_url, password, host_url_expires_at, password_expires_at, error_message,
     first_seen_at, first_seen_rank, version_at, version_event, updated_at)
VALUES (:id, :provider, :appointment, :status, :conferencing_provider, :external_meeting_id,
        :join_url, {_live("host_url")}, {_live("password")}, :host_url_expires_at,
        :password_expires_at, :error_message, :at, 1, :at, :event, {NOW_SQL})
ON CONFLICT (provider, id) DO UPDATE SET
    status = excluded.status,
    conferencing_provider = excluded.conferencing_provider,
    external_meeting_id = excluded.external_meeting_id,
    join_url = excluded.join_url,
    host_url = CASE WHEN meetings.predecessor = 0 THEN excluded.host_url END,
    password = CASE WHEN meetings.predecessor = 0 THEN excluded.password END,
    host_url_expires_at = excluded.host_url_expires_at,
    password_expires_at = excluded.password_expires_at,
    error_message = excluded.error_message,
    version_at = excluded.version_at,
    version_event = excluded.version_event,
    updated_at = excluded.updated_at
WHERE (excluded.version_at, excluded.version_event)
    > (meetings.version_at, meetings.version_event)
  AND meetings.appointment_id = excluded.appointment_id
RETURNING first_seen_at, first_seen_rank
"""

# A meeting seen earlier than we knew (late delivery): move it back in the chain.
_FIRST_SEEN = """
UPDATE meetings SET first_seen_at = ?, first_seen_rank = ?
WHERE provider = ? AND id = ? AND appointment_id = ?
  AND (first_seen_at, first_seen_rank) > (?, ?)
"""

# A meeting id belongs to the appointment it was first seen under (ids are the provider's, one
# meeting per appointment): another appointment naming it is a conflict, reported, not applied.
_OWNER = "SELECT appointment_id FROM meetings WHERE provider = ? AND id = ?"

# A replaced event names the old meeting: known by id only, it sorts just before the new one,
# and stays superseded for good (``predecessor``). Its version is the least there is, so any
# snapshot of it wins, even one dated before 1970 by a bad clock.
_PREDECESSOR = f"""
INSERT INTO meetings
    (id, provider, appointment_id, first_seen_at, first_seen_rank, version_at, version_event,
     predecessor, updated_at)
VALUES (?, ?, ?, ?, 0, {-2**63}, '', 1, {NOW_SQL})
ON CONFLICT (provider, id) DO UPDATE SET predecessor = 1
WHERE meetings.predecessor = 0 AND meetings.appointment_id = excluded.appointment_id
"""

_CHAIN = """
SELECT id, replaced_by, predecessor FROM meetings WHERE provider = ? AND appointment_id = ?
ORDER BY first_seen_at, first_seen_rank, id
"""

_UNSUPERSEDE = (
    f"UPDATE meetings SET replaced_by = NULL, updated_at = {NOW_SQL} WHERE provider = ? AND id = ?"
)

_SUPERSEDE = (
    f"UPDATE meetings SET replaced_by = ?, updated_at = {NOW_SQL} WHERE provider = ? AND id = ?"
)

_CURRENT = f"""
UPDATE appointments SET meeting_id = ?, updated_at = {NOW_SQL}
WHERE provider = ? AND id = ? AND meeting_id IS NOT ?
"""

_NAMED = "SELECT no_meeting, named_meeting_id FROM appointments WHERE provider = ? AND id = ?"

_NO_CREDENTIALS = f"""
UPDATE meetings SET host_url = NULL, password = NULL, updated_at = {NOW_SQL}
WHERE provider = ? AND appointment_id = ? AND id IS NOT ?
  AND (host_url IS NOT NULL OR password IS NOT NULL)
"""


def apply_events(
    conn: Connection, events: Iterable[Event], now: datetime
) -> ApplyResult:
    """Apply events inside the caller's transaction; returns what happened.

    ``now`` decides which credentials are already dead (their expiry is not after it): those
    are never written.
    """
    result = ApplyResult()
    at = iso_utc(now)
    touched: set[tuple[str, str]] = set()
    for event in events:
        if _apply_one(conn, event, at, result):  # the current meeting may have changed
            touched.add((event.provider, event.appointment_id))
    for provider, appointment_id in touched:
        _resolve_chain(conn, provider, appointment_id)
    return result


def _meeting_state(event: Event) -> int | None:
    if event.no_meeting:
        return 1
    return None if event.meeting is None else 0


def _apply_one(
    conn: Connection, event: Event, now: str, result: ApplyResult
) -> bool:
    inbox = conn.execute(_INBOX, {
        "id": event.id, "provider": event.provider, "appointment": event.appointment_id,
        "type": event.type, "at": event.occurred_at, "claimed_at": event.claimed_at,
        "account": event.account,
    }).fetchone()
    if inbox is None:
        result.duplicates += 1
        return False
    if inbox[0] == ACCOUNT_CONFLICT:
        (owner,) = conn.execute(_OWNER_OF, (event.provider, event.appointment_id)).fetchone()
        result.account_conflicts.append(
            AccountConflict(event.provider, event.appointment_id, owner, event.account))
        return False
    result.applied += 1
    state = _meeting_state(event)
    timed = event.start_at is not None or event.end_at is not None
    landed = conn.execute(
        _APPOINTMENT,
        (
            event.appointment_id,
            event.provider,
            event.account,
            event.appointment_status,
            event.start_at,
            event.end_at,
            event.occurred_at,
            event.id,
            state or 0,
            _meeting_id(event.meeting),
            event.occurred_at if timed else None,
            event.id if timed else None,
            state,
            state,
        ),
    ).fetchone()
    if landed is None and timed:
        conn.execute(_TIMES, {"provider": event.provider, "appointment": event.appointment_id,
                              "start_at": event.start_at, "end_at": event.end_at,
                              "at": event.occurred_at, "event": event.id})
    if event.participants is not None:
        _replace_set(conn, event, _PARTICIPANTS, event.participants)
    if event.occurrences is not None:
        _replace_set(conn, event, _OCCURRENCES, event.occurrences)
    chain_changed = False
    if landed is None:
        result.stale += 1
        conn.execute(_STALE, (event.provider, event.id))
        tied = conn.execute(
            _TIE, (event.provider, event.appointment_id, event.occurred_at, event.id)
        ).rowcount > 0
    else:
        tied, current, detached = landed[0] is not None, landed[1], landed[2]
        # The newest word on the appointment detaches its meeting, or names another one.
        chain_changed = (detached == 1 and current is not None) or (
            event.meeting is not None and current != event.meeting.id
        )
    if tied:
        result.ties.add((event.provider, event.appointment_id))
    if event.previous_meeting_id and event.previous_meeting_id != _meeting_id(event.meeting):
        chain_changed |= conn.execute(
            _PREDECESSOR,
            (event.previous_meeting_id, event.provider, event.appointment_id, event.occurred_at),
        ).rowcount > 0
        chain_changed |= _seen(conn, event, event.previous_meeting_id, 0)
    if event.meeting is not None:
        # A snapshot that landed is the appointment's newest: it names this meeting.
        named = landed is not None or _named(conn, event) == event.meeting.id
        chain_changed |= _upsert_meeting(conn, event, event.meeting, named, now, result)
    return chain_changed


def _replace_set(
    conn: Connection, event: Event, listed: _ListedSet,
    members: tuple[Participant, ...] | tuple[Occurrence, ...],
) -> None:
    """Make the snapshot's members the appointment's, if no newer snapshot listed them."""
    key = {"provider": event.provider, "appointment": event.appointment_id}
    if not conn.execute(listed.claim, {**key, "at": event.occurred_at, "event": event.id}
                        ).rowcount:
        return
    conn.execute(listed.gone, {**key, "ids": orjson.dumps([m.id for m in members]).decode()})
    conn.executemany(listed.upsert, [
        {**key, "id": m.id, **{name: getattr(m, name) for name in listed.fields}}
        for m in members
    ])


def _named(conn: Connection, event: Event) -> str | None:
    """The meeting the appointment's newest snapshot names."""
    row = conn.execute(_NAMED, (event.provider, event.appointment_id)).fetchone()
    return row[1] if row else None


def _upsert_meeting(
    conn: Connection, event: Event, meeting: Meeting, named: bool, now: str,
    result: ApplyResult,
) -> bool:
    """Write the meeting (its credentials only if ``named`` and not yet expired at ``now``);
    True when its place in the chain may have changed."""
    row = conn.execute(
        _MEETING,
        {
            "provider": event.provider,
            "appointment": event.appointment_id,
            "named": named,
            "now": now,
            "id": meeting.id,
            "status": meeting.status,
            "conferencing_provider": meeting.conferencing_provider,
            "external_meeting_id": meeting.external_meeting_id,
            "join_url": meeting.join_url,
            "host_url": meeting.host_url,
            "password": meeting.password,
            "host_url_expires_at": meeting.host_url_expires_at,
            "password_expires_at": meeting.password_expires_at,
            "error_message": meeting.error_message,
            "at": event.occurred_at,
            "event": event.id,
        },
    ).fetchone()
    if row is not None and (row[0], row[1]) < (event.occurred_at, 1):
        return False  # a known meeting, first seen earlier: the common update, chain untouched
    if row is not None and (row[0], row[1]) == (event.occurred_at, 1):
        return True  # just inserted (or first seen at this very instant): place it
    if row is None:
        (owner,) = conn.execute(_OWNER, (event.provider, meeting.id)).fetchone()
        if owner != event.appointment_id:
            result.conflicts.append(Conflict(meeting.id, owner, event.appointment_id))
            return False
    # A stale write may move it earlier.
    return _seen(conn, event, meeting.id, 1)


def _seen(conn: Connection, event: Event, meeting_id: str, rank: int) -> bool:
    """Move the event's meeting back in its chain if the event saw it earlier than known."""
    at = event.occurred_at
    return bool(conn.execute(
        _FIRST_SEEN, (at, rank, event.provider, meeting_id, event.appointment_id, at, rank)
    ).rowcount > 0)


def _meeting_id(meeting: Meeting | None) -> str | None:
    return meeting.id if meeting else None


def _resolve_chain(conn: Connection, provider: str, appointment_id: str) -> None:
    """Link the appointment's meetings in first-seen order and pick its current one.

    The current meeting is the one its newest snapshot names, moved to the end of the chain if
    it sorts earlier (first seen under a provider clock running behind); but a meeting a
    replacement named as the one replaced never comes back (docs/providers.md): then, and when no
    snapshot names one, it is the last meeting never replaced.
    """
    key = (provider, appointment_id)
    chain = conn.execute(_CHAIN, key).fetchall()
    detached, named = conn.execute(_NAMED, key).fetchone() or (0, None)
    standing = [row for row in chain if not row[2]]  # never named as replaced
    current = next((row for row in standing if row[0] == named), None) or (
        standing[-1] if standing else chain[-1] if chain else None)
    chain = [row for row in chain if row is not current] + ([current] if current else [])
    for (meeting_id, replaced_by, _), (successor, _, _) in itertools.pairwise(chain):
        if replaced_by != successor:
            conn.execute(_SUPERSEDE, (successor, provider, meeting_id))
    if current is not None and current[1] is not None:
        conn.execute(_UNSUPERSEDE, (provider, current[0]))
    current_id = None if detached == 1 or current is None else current[0]
    conn.execute(_NO_CREDENTIALS, (*key, current_id if current_id == named else None))
    if chain:
        conn.execute(_CURRENT, (current_id, *key, current_id))
