"""A batch's rows: read once before it is folded (``store/apply.py``), written back set-based.

``read`` loads, with one statement per table (per provider in the batch), everything the batch's
events may look at: their inbox rows, their appointments, every meeting of those appointments
and every meeting they name (one held by another appointment is a conflict, never written),
and the participants and occurrences of the appointments whose events list them. ``write``
writes back only the rows the fold changed, per table one ``executemany`` on SQLite, one ``COPY``
and one ``INSERT … SELECT`` on PostgreSQL: a row written once per batch logs one change (the
change-log triggers of ``store/schema.py`` fire per row written and only on a visible change),
however many of the batch's events touched it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from meetsync.events import Event
from meetsync.store.postgres import PgConnection
from meetsync.store.schema import NOW_SQL

Key = tuple[str, str]
"""(provider, id): an appointment, a meeting or an inbox event."""

Row = dict[str, Any]

APPOINTMENT = (
    "provider", "id", "account", "owner_known", "meeting_id", "status", "start_at", "end_at",
    "version_at", "version_event", "tie_at", "no_meeting", "named_meeting_id", "times_at",
    "times_event", "participants_at", "participants_event", "occurrences_at",
    "occurrences_event",
)
MEETING = (
    "provider", "id", "appointment_id", "status", "conferencing_provider",
    "external_meeting_id", "join_url", "host_url", "password", "host_url_expires_at",
    "password_expires_at", "error_message", "replaced_by", "first_seen_at", "first_seen_rank",
    "version_at", "version_event", "predecessor",
)
LISTED = {
    "participants": ("role", "unique_id", "display_name"),
    "occurrences": ("start_at", "end_at", "status"),
}
"""The listed sets: each table's fields besides its key (provider, appointment_id, id)."""

INBOX = ("id", "provider", "appointment_id", "type", "occurred_at", "claimed_at", "account",
         "outcome")


class Connection(Protocol):
    """What the batch needs of a connection: ``sqlite3.Connection``, or the PostgreSQL one
    (``store/postgres.py``) that translates the same statements."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


@dataclass
class Rows:
    """The mirror's rows a batch reads and folds: keyed by (provider, id); the listed sets by
    table, then appointment, then member id."""

    inbox: set[Key] = field(default_factory=set)
    appointments: dict[Key, Row] = field(default_factory=dict)
    meetings: dict[Key, Row] = field(default_factory=dict)
    listed: dict[str, dict[Key, dict[str, Row]]] = field(
        default_factory=lambda: {table: {} for table in LISTED})


def _ids(values: set[str]) -> str:
    return orjson.dumps(sorted(values)).decode()


def _keyed(table: str, columns: tuple[str, ...], key: str, ids: str, *, postgres: bool) -> str:
    """``columns`` of the ``table`` rows of provider ``:provider`` whose ``key`` is one of the
    JSON array ``:ids`` (a parameter each). On PostgreSQL one index lookup per id, whatever
    the table's statistics say: its plan for an ``IN`` hashes the whole table until autovacuum
    has analysed it (a new mirror, a table grown fast), milliseconds for a batch of one."""
    listed = ", ".join(columns)
    if postgres:
        return (f"SELECT {listed} FROM jsonb_array_elements_text(:{ids}) AS k(value)"
                f" CROSS JOIN LATERAL (SELECT {listed} FROM {table}"
                f" WHERE provider = :provider AND {key} = k.value OFFSET 0) AS found")
    return (f"SELECT {listed} FROM {table}"
            f" WHERE provider = :provider AND {key} IN (SELECT value FROM json_each(:{ids}))")


@dataclass(frozen=True)
class _Reads:
    """The batch's read statements, in one dialect's words."""

    inbox: str
    appointments: str
    meetings: str
    listed: dict[str, str]

    @classmethod
    def of(cls, *, postgres: bool) -> _Reads:
        return cls(
            inbox=_keyed("events", ("id",), "id", "events", postgres=postgres),
            appointments=_keyed("appointments", APPOINTMENT, "id", "appointments",
                                postgres=postgres),
            # Two halves, not one ``OR``: SQLite answers an ``OR`` of the two ``IN``s by
            # scanning every meeting of the provider; each half alone takes its index
            # (``meetings_chain``, the key). A meeting both halves find comes twice, as the
            # same row.
            meetings=" UNION ALL ".join(
                _keyed("meetings", MEETING, key, ids, postgres=postgres)
                for key, ids in (("appointment_id", "appointments"), ("id", "meetings"))),
            listed={table: _keyed(table, ("appointment_id", "id", *fields), "appointment_id",
                                  "appointments", postgres=postgres)
                    for table, fields in LISTED.items()},
        )


_READS = {False: _Reads.of(postgres=False), True: _Reads.of(postgres=True)}


@dataclass
class _Wanted:
    events: set[str] = field(default_factory=set)
    appointments: set[str] = field(default_factory=set)
    meetings: set[str] = field(default_factory=set)
    listed: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in LISTED})


def read(conn: Connection, events: Sequence[Event]) -> Rows:
    """The rows ``events`` may read, as the mirror holds them now."""
    wanted: dict[str, _Wanted] = defaultdict(_Wanted)
    for event in events:
        w = wanted[event.provider]
        w.events.add(event.id)
        w.appointments.add(event.appointment_id)
        if event.meeting is not None:
            w.meetings.add(event.meeting.id)
        if event.previous_meeting_id:
            w.meetings.add(event.previous_meeting_id)
        if event.participants is not None:
            w.listed["participants"].add(event.appointment_id)
        if event.occurrences is not None:
            w.listed["occurrences"].add(event.appointment_id)
    rows = Rows()
    reads = _READS[isinstance(conn, PgConnection)]
    for provider, w in wanted.items():
        rows.inbox.update((provider, event_id) for (event_id,) in conn.execute(
            reads.inbox, {"provider": provider, "events": _ids(w.events)}))
        keys = {"provider": provider, "appointments": _ids(w.appointments)}
        for found in conn.execute(reads.appointments, keys):
            rows.appointments[provider, found[1]] = dict(zip(APPOINTMENT, found, strict=True))
        for found in conn.execute(reads.meetings, {**keys, "meetings": _ids(w.meetings)}):
            rows.meetings[provider, found[1]] = dict(zip(MEETING, found, strict=True))
        for table, fields in LISTED.items():
            if not w.listed[table]:
                continue
            sets = rows.listed[table]
            for appointment_id in w.listed[table]:
                sets[provider, appointment_id] = {}
            for found in conn.execute(reads.listed[table], {
                    "provider": provider, "appointments": _ids(w.listed[table])}):
                sets[provider, found[0]][found[1]] = dict(zip(fields, found[2:], strict=True))
    return rows


@dataclass(frozen=True)
class _Write:
    """An insert of rows of ``columns`` (stamped ``stamp`` = the clock), then ``tail`` (its
    ``ON CONFLICT``): row by row (``executemany``), or on PostgreSQL from a staging table filled
    by ``COPY``, one statement for all (the rows' own statements cost ~4x what COPY does)."""

    table: str
    columns: tuple[str, ...]
    stamp: str
    tail: str

    def run(self, conn: Connection, rows: Sequence[Row]) -> None:
        head = f"INSERT INTO {self.table} ({', '.join(self.columns)}, {self.stamp})"
        if isinstance(conn, PgConnection):
            staged = conn.stage(self.table, self.columns,
                                ([row[name] for name in self.columns] for row in rows))
            conn.execute(f"{head} SELECT {', '.join(self.columns)}, {NOW_SQL}"
                         f" FROM {staged} {self.tail}")
        else:
            values = ", ".join(f":{name}" for name in self.columns)
            conn.executemany(f"{head} VALUES ({values}, {NOW_SQL}) {self.tail}", rows)


@dataclass(frozen=True)
class _Upsert(_Write):
    """A row upsert keyed by ``(provider, id)``. On SQLite a row the batch read is updated in
    only the columns the fold changed, rows changed alike in one ``executemany``: an upsert
    rewrites every column, and with them each index on any of them (SQLite does not compare
    old and new values), at about twice the cost. ``guard`` is the update's extra condition,
    as ``tail`` says it."""

    guard: str = ""

    def write(self, conn: Connection, before: dict[Key, Row], rows: Sequence[Row]) -> None:
        if isinstance(conn, PgConnection):
            self.run(conn, rows)
            return
        new: list[Row] = []
        alike: dict[tuple[str, ...], list[Row]] = defaultdict(list)
        for row in rows:
            old = before.get((row["provider"], row["id"]))
            if old is None:
                new.append(row)
            else:
                alike[tuple(name for name in self.columns if old[name] != row[name])].append(row)
        if new:
            self.run(conn, new)
        for names, changed in alike.items():
            conn.executemany(
                f"UPDATE {self.table} SET {', '.join(f'{name} = :{name}' for name in names)},"
                f" {self.stamp} = {NOW_SQL} WHERE provider = :provider AND id = :id{self.guard}",
                changed)


def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...], where: str = ""
            ) -> _Write:
    return _Write(table, columns, "updated_at", _on_conflict(columns, key, where))


def _on_conflict(columns: tuple[str, ...], key: tuple[str, ...], where: str = "") -> str:
    return f"""
ON CONFLICT ({", ".join(key)}) DO UPDATE SET
    {", ".join(f"{name} = excluded.{name}" for name in columns if name not in key)},
    updated_at = excluded.updated_at
{where}"""


_WRITE_INBOX = _Write("events", INBOX, "applied_at", "ON CONFLICT (provider, id) DO NOTHING")
_WRITE_APPOINTMENTS = _Upsert("appointments", APPOINTMENT, "updated_at",
                              _on_conflict(APPOINTMENT, ("provider", "id")))
# A meeting id another appointment took meanwhile stays with it (the fold reports a conflict
# for those it saw).
_WRITE_MEETINGS = _Upsert("meetings", MEETING, "updated_at", _on_conflict(
    MEETING, ("provider", "id"), "WHERE meetings.appointment_id = excluded.appointment_id"),
    " AND appointment_id = :appointment_id")


def _write_listed(table: str) -> _Write:
    fields = LISTED[table]
    return _upsert(table, ("provider", "appointment_id", "id", *fields),
                   ("provider", "appointment_id", "id"),
                   "WHERE " + " OR ".join(f"{table}.{name} IS NOT excluded.{name}"
                                          for name in fields))


def _delete_listed(table: str) -> str:
    return f"DELETE FROM {table} WHERE provider = ? AND appointment_id = ? AND id = ?"


def snapshot(rows: Rows) -> Rows:
    """A copy of ``rows`` to compare the folded ones with (``write`` writes the difference).

    Each row is copied one level deep, as deep as it goes: its values are scalars, which the
    fold replaces, never changes in place (``copy.deepcopy`` would cost several times more)."""
    return Rows(
        inbox=set(rows.inbox),
        appointments={key: dict(row) for key, row in rows.appointments.items()},
        meetings={key: dict(row) for key, row in rows.meetings.items()},
        listed={table: {key: {member: dict(values) for member, values in members.items()}
                        for key, members in sets.items()}
                for table, sets in rows.listed.items()})


def write(conn: Connection, before: Rows, after: Rows, inbox: Sequence[Row]) -> None:
    """Write the new inbox rows and every row ``after`` holds that ``before`` did not."""
    if inbox:
        _WRITE_INBOX.run(conn, inbox)
    changed = [row for key, row in after.appointments.items()
               if before.appointments.get(key) != row]
    if changed:
        _WRITE_APPOINTMENTS.write(conn, before.appointments, changed)
    changed = [row for key, row in after.meetings.items() if before.meetings.get(key) != row]
    if changed:
        _WRITE_MEETINGS.write(conn, before.meetings, changed)
    for table in LISTED:
        gone: list[tuple[str, str, str]] = []
        upserts: list[Row] = []
        for (provider, appointment_id), members in after.listed[table].items():
            known = before.listed[table].get((provider, appointment_id), {})
            gone += [(provider, appointment_id, member) for member in known
                     if member not in members]
            upserts += [{"provider": provider, "appointment_id": appointment_id, "id": member,
                         **values}
                        for member, values in members.items() if known.get(member) != values]
        if gone:
            conn.executemany(_delete_listed(table), gone)
        if upserts:
            _write_listed(table).run(conn, upserts)
