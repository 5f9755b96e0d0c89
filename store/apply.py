"""Guarded writes: apply provider-neutral events to the mirror, idempotently, in any order.

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
  always creates a brand-new meeting id, docs/providers.md): each meeting's ``replaced_by`` is
  the next one, the last is current, and a superseded meeting never becomes current again;
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

A batch is folded per appointment: its rows are read once (``store/rows.py``), each event is
applied to them in memory in the batch's order under the rules above, the chains of the
appointments whose current meeting may have changed are resolved once, and only the rows that
changed are written back, set-based. The per-event statements these rules were first written as
live on in ``tests/store/per_event.py``: ``tests/store/test_fold_equivalence.py`` pins the fold
to them on both backends.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from meetsync.credentials import live
from meetsync.events import Event, Meeting, iso_utc
from meetsync.store.rows import LISTED, MEETING, Connection, Key, Row, Rows, read, snapshot, write

__all__ = ["ACCOUNT_CONFLICT", "AccountConflict", "ApplyResult", "Conflict", "Connection",
           "apply_events"]

# Deprecated: used by the legacy provider's sweep (and the demo) until it moves into the
# provider. Nothing in the store uses it: each credential dies at its own expiry.
CREDENTIAL_GRACE = timedelta(hours=24)

ACCOUNT_CONFLICT = "account_conflict"
"""The inbox outcome of an event from another account than its appointment's owner."""

PREDECESSOR_VERSION = -2**63
"""A meeting known only as the one a replacement replaced: its version is the least there is,
so any snapshot of it wins, even one dated before 1970 by a bad clock."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A snapshot named a meeting the mirror holds under another appointment: its appointment
    fields were applied, the meeting was left with the appointment that has it."""

    meeting_id: str
    held_by: str
    named_by: str


@dataclass(frozen=True, slots=True)
class AccountConflict:
    """An event for an appointment another account owns: recorded in the inbox (outcome
    ``account_conflict``), not applied. Names accounts, never secrets."""

    provider: str
    appointment_id: str
    owner: str
    sender: str


@dataclass
class ApplyResult:
    """What one batch did."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    ties: set[tuple[str, str]] = field(default_factory=set)  # (provider, appointment id)
    conflicts: list[Conflict] = field(default_factory=list)
    account_conflicts: list[AccountConflict] = field(default_factory=list)

    def add(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.stale += other.stale
        self.ties |= other.ties
        self.conflicts += other.conflicts
        self.account_conflicts += other.account_conflicts



def apply_events(conn: Connection, events: Sequence[Event], now: datetime) -> ApplyResult:
    """Apply events inside the caller's transaction; returns what happened.

    ``now`` decides which credentials are already dead (their expiry is not after it): those
    are never written.
    """
    rows = read(conn, events)
    fold = _Fold(snapshot(rows), iso_utc(now))
    touched: set[Key] = set()
    for event in events:
        if fold.apply(event):  # the current meeting may have changed
            touched.add((event.provider, event.appointment_id))
    for key in touched:
        fold.resolve_chain(key)
    write(conn, rows, fold.rows, list(fold.inbox.values()))
    return fold.result


def _newer(pair: tuple[Any, Any], than: tuple[Any, Any]) -> bool:
    """``pair > than`` as SQL compares two rows: unknown (false) where a NULL decides."""
    if than[0] is None:
        return False
    if pair[0] != than[0]:
        return bool(pair[0] > than[0])
    return than[1] is not None and bool(pair[1] > than[1])


def _meeting_state(event: Event) -> int | None:
    if event.no_meeting:
        return 1
    return None if event.meeting is None else 0


def _meeting_id(meeting: Meeting | None) -> str | None:
    return meeting.id if meeting else None


class _Fold:
    """A batch's rows, and the events applied to them one by one in memory."""

    def __init__(self, rows: Rows, now: str) -> None:
        self.rows = rows
        self.now = now
        self.result = ApplyResult()
        self.inbox: dict[Key, Row] = {}
        self.chains: dict[Key, list[Row]] = defaultdict(list)  # an appointment's meetings
        for meeting in rows.meetings.values():
            self.chains[meeting["provider"], meeting["appointment_id"]].append(meeting)

    def apply(self, event: Event) -> bool:
        """Apply one event; True when its appointment's current meeting may have changed."""
        key = (event.provider, event.appointment_id)
        if (event.provider, event.id) in self.rows.inbox or (
                (event.provider, event.id) in self.inbox):
            self.result.duplicates += 1
            return False
        appointment = self.rows.appointments.get(key)
        foreign = (appointment is not None and appointment["owner_known"] == 1
                   and appointment["account"] != event.account)
        inbox = {"id": event.id, "provider": event.provider,
                 "appointment_id": event.appointment_id, "type": event.type,
                 "occurred_at": event.occurred_at, "claimed_at": event.claimed_at,
                 "account": event.account,
                 "outcome": ACCOUNT_CONFLICT if foreign else "applied"}
        self.inbox[event.provider, event.id] = inbox
        if foreign:
            assert appointment is not None
            self.result.account_conflicts.append(AccountConflict(
                event.provider, event.appointment_id, appointment["account"], event.account))
            return False
        self.result.applied += 1
        version = (event.occurred_at, event.id)
        landed = appointment is None or _newer(
            version, (appointment["version_at"], appointment["version_event"]))
        appointment = self._appointment(event, appointment, landed)
        for table, members in (("participants", event.participants),
                               ("occurrences", event.occurrences)):
            if members is not None:
                self._replace_set(event, appointment, table, members)
        chain_changed = False
        if not landed:
            self.result.stale += 1
            inbox["outcome"] = "stale"
            tied = (appointment["version_at"] == event.occurred_at
                    and appointment["version_event"] > event.id)
            if tied:
                appointment["tie_at"] = appointment["version_at"]
        else:
            tied = appointment["tie_at"] is not None
            current = appointment["meeting_id"]
            # The newest word on the appointment detaches its meeting, or names another one.
            chain_changed = (appointment["no_meeting"] == 1 and current is not None) or (
                event.meeting is not None and current != event.meeting.id)
        if tied:
            self.result.ties.add(key)
        if event.previous_meeting_id and event.previous_meeting_id != _meeting_id(event.meeting):
            chain_changed |= self._predecessor(event, event.previous_meeting_id)
            chain_changed |= self._seen(event, event.previous_meeting_id, 0)
        if event.meeting is not None:
            # A snapshot that landed is the appointment's newest: it names this meeting.
            named = landed or appointment["named_meeting_id"] == event.meeting.id
            chain_changed |= self._meeting(event, event.meeting, named)
        return chain_changed

    def _appointment(self, event: Event, row: Row | None, landed: bool) -> Row:
        """The appointment with the event's fields if it is the newest snapshot; an older one
        still gives its times if no newer snapshot gave any."""
        state = _meeting_state(event)
        timed = event.start_at is not None or event.end_at is not None
        version = (event.occurred_at, event.id)
        times = version if timed else (None, None)
        if row is None:
            row = {
                "provider": event.provider, "id": event.appointment_id,
                "account": event.account, "owner_known": 1, "meeting_id": None,
                "status": event.appointment_status, "start_at": event.start_at,
                "end_at": event.end_at, "version_at": event.occurred_at,
                "version_event": event.id, "tie_at": None, "no_meeting": state or 0,
                "named_meeting_id": _meeting_id(event.meeting), "times_at": times[0],
                "times_event": times[1], "participants_at": None, "participants_event": None,
                "occurrences_at": None, "occurrences_event": None,
            }
            self.rows.appointments[event.provider, event.appointment_id] = row
            return row
        if landed:
            if row["owner_known"] != 1:  # a row from before m010: this event names its owner
                row["account"], row["owner_known"] = event.account, 1
            row["status"] = event.appointment_status
            row["tie_at"] = event.occurred_at if row["version_at"] == event.occurred_at else None
            row["version_at"], row["version_event"] = version
            if state is not None:
                row["no_meeting"], row["named_meeting_id"] = state, _meeting_id(event.meeting)
        if timed and (landed or row["times_at"] is None
                      or _newer(version, (row["times_at"], row["times_event"]))):
            row["start_at"], row["end_at"] = event.start_at, event.end_at
            row["times_at"], row["times_event"] = version
        return row

    def _replace_set(self, event: Event, appointment: Row, table: str,
                     members: tuple[Any, ...]) -> None:
        """Make the snapshot's members the appointment's, if no newer snapshot listed them."""
        version = (event.occurred_at, event.id)
        if appointment[f"{table}_at"] is not None and not _newer(
                version, (appointment[f"{table}_at"], appointment[f"{table}_event"])):
            return
        appointment[f"{table}_at"], appointment[f"{table}_event"] = version
        fields = LISTED[table]
        self.rows.listed[table][event.provider, event.appointment_id] = {
            member.id: {name: getattr(member, name) for name in fields} for member in members}

    def _predecessor(self, event: Event, meeting_id: str) -> bool:
        """Mark the meeting a replacement names as replaced (known by id only if new: it sorts
        just before the new one); True if that changed it."""
        meeting = self.rows.meetings.get((event.provider, meeting_id))
        if meeting is None:
            meeting = dict.fromkeys(MEETING)
            meeting.update(
                provider=event.provider, id=meeting_id, appointment_id=event.appointment_id,
                first_seen_at=event.occurred_at, first_seen_rank=0,
                version_at=PREDECESSOR_VERSION, version_event="", predecessor=1)
            self._add_meeting(meeting)
            return True
        if meeting["predecessor"] == 0 and meeting["appointment_id"] == event.appointment_id:
            meeting["predecessor"] = 1
            return True
        return False

    def _add_meeting(self, meeting: Row) -> None:
        self.rows.meetings[meeting["provider"], meeting["id"]] = meeting
        self.chains[meeting["provider"], meeting["appointment_id"]].append(meeting)

    def _live(self, named: bool, credential: str | None, expires_at: str | None) -> str | None:
        """A credential is kept by the meeting the newest snapshot names, until its expiry."""
        return credential if named and live(expires_at, self.now) else None

    def _meeting(self, event: Event, meeting: Meeting, named: bool) -> bool:
        """Write the meeting (its credentials only if ``named`` and not yet expired); True when
        its place in the chain may have changed."""
        host_url = self._live(named, meeting.host_url, meeting.host_url_expires_at)
        password = self._live(named, meeting.password, meeting.password_expires_at)
        fields = {
            "status": meeting.status, "conferencing_provider": meeting.conferencing_provider,
            "external_meeting_id": meeting.external_meeting_id, "join_url": meeting.join_url,
            "host_url": host_url, "password": password,
            "host_url_expires_at": meeting.host_url_expires_at,
            "password_expires_at": meeting.password_expires_at,
            "error_message": meeting.error_message,
            "version_at": event.occurred_at, "version_event": event.id,
        }
        row = self.rows.meetings.get((event.provider, meeting.id))
        if row is None:
            self._add_meeting({
                "provider": event.provider, "id": meeting.id,
                "appointment_id": event.appointment_id, **fields, "replaced_by": None,
                "first_seen_at": event.occurred_at, "first_seen_rank": 1, "predecessor": 0})
            return True  # place it
        if row["appointment_id"] != event.appointment_id:
            self.result.conflicts.append(
                Conflict(meeting.id, row["appointment_id"], event.appointment_id))
            return False
        if _newer((event.occurred_at, event.id), (row["version_at"], row["version_event"])):
            if row["predecessor"] != 0:  # superseded for good: no credentials
                fields["host_url"] = fields["password"] = None
            row.update(fields)
            seen = (row["first_seen_at"], row["first_seen_rank"])
            if seen < (event.occurred_at, 1):
                return False  # a known meeting, first seen earlier: the chain is untouched
            if seen == (event.occurred_at, 1):
                return True
        # A stale write may move it earlier.
        return self._seen(event, meeting.id, 1)

    def _seen(self, event: Event, meeting_id: str, rank: int) -> bool:
        """Move the event's meeting back in its chain if the event saw it earlier than known."""
        row = self.rows.meetings.get((event.provider, meeting_id))
        if row is None or row["appointment_id"] != event.appointment_id:
            return False
        if not _newer((row["first_seen_at"], row["first_seen_rank"]), (event.occurred_at, rank)):
            return False
        row["first_seen_at"], row["first_seen_rank"] = event.occurred_at, rank
        return True

    def resolve_chain(self, key: Key) -> None:
        """Link the appointment's meetings in first-seen order and pick its current one.

        The current meeting is the one its newest snapshot names, moved to the end of the chain
        if it sorts earlier (first seen under a provider clock running behind); but a meeting a
        replacement named as the one replaced never comes back (docs/providers.md): then, and
        when no snapshot names one, it is the last meeting never replaced.
        """
        chain = sorted(self.chains[key], key=lambda m: (
            m["first_seen_at"], m["first_seen_rank"], m["id"]))
        appointment = self.rows.appointments[key]
        detached, named = appointment["no_meeting"], appointment["named_meeting_id"]
        standing = [m for m in chain if not m["predecessor"]]  # never named as replaced
        current = next((m for m in standing if m["id"] == named), None) or (
            standing[-1] if standing else chain[-1] if chain else None)
        chain = [m for m in chain if m is not current] + ([current] if current else [])
        for meeting, successor in itertools.pairwise(chain):
            meeting["replaced_by"] = successor["id"]
        if current is not None:
            current["replaced_by"] = None
        current_id = None if detached == 1 or current is None else current["id"]
        keep = current_id if current_id == named else None
        for meeting in chain:
            if meeting["id"] != keep:
                meeting["host_url"] = meeting["password"] = None
        if chain:
            appointment["meeting_id"] = current_id
