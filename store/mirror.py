"""The ``Store``: one connection to the mirror, batched writes and reads.

The mirror is a SQLite file (the default) or a PostgreSQL database
(``MEETSYNC_DB=postgresql://...``); what differs between them is the store's ``Dialect``
(``store/dialect.py``).

A ``Store`` is synchronous and not thread-safe: use it from one thread at a time (the worker
gives it a thread of its own so the database never stalls the event loop). Its errors are in
``meetsync/errors.py``: ``StoreBusy`` means retry later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meetsync.credentials import dead, dead_sql
from meetsync.errors import StoreError
from meetsync.events import LEGACY_PROVIDER, Event, iso_utc
from meetsync.storable import unstorable
from meetsync.store.apply import ApplyResult, apply_events
from meetsync.store.dialect import Dialect, dialect_for

BUSY_TIMEOUT_SECONDS = 5.0
INBOX_RETENTION = timedelta(days=30)
PRUNE_CHUNK = 5_000  # at 10M rows one chunk holds the write lock ~1 s (bench: prune)

Clock = Callable[[], datetime]

DEFAULT_PROVIDER = LEGACY_PROVIDER
"""The provider reads serve unless told otherwise: every mirror before m004 held its rows."""

_MEETING_COLUMNS = (
    "m.provider, m.id, m.status, m.conferencing_provider, m.external_meeting_id, m.join_url, "
    "m.host_url, m.password, m.host_url_expires_at, m.password_expires_at, m.error_message, "
    "m.appointment_id, m.replaced_by, m.updated_at, m.version_at, a.status, a.meeting_id"
)


SNAPSHOT_FIELDS = (
    "status", "start_at", "end_at", "meeting_id", "meeting.status",
    "meeting.conferencing_provider", "meeting.external_meeting_id", "meeting.join_url",
    "meeting.host_url", "meeting.password", "meeting.error_message",
)


@dataclass(frozen=True, slots=True)
class Failure:
    """An event that could not be applied on its own."""

    event: Event
    reason: str


def _system_clock() -> datetime:
    return datetime.now(UTC)


def open_store(
    path: str | Path,
    *,
    readonly: bool = False,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
    clock: Clock = _system_clock,
) -> Store:
    """Open (creating and migrating, unless ``readonly``) the mirror at ``path``: a SQLite
    file, or a ``postgresql://`` URL.

    ``busy_timeout`` (seconds) bounds how long one statement waits for another writer's lock
    before ``StoreBusy``; the applier then backs off and retries, so nothing is lost.
    ``clock`` is the store's "now": which credentials are dead, and what reads may serve.
    """
    dialect = dialect_for(path)
    conn = dialect.connect(path, readonly=readonly, busy_timeout=busy_timeout)
    try:
        if readonly:
            dialect.require_tables(conn)
        else:
            dialect.migrate(conn)
    except BaseException:
        conn.close()  # e.g. busy: the caller retries with a new connection
        raise
    return Store(conn, dialect, clock)


class Store:
    """The mirror: guarded writes in batches, and the reads downstream apps use."""

    def __init__(self, conn: Any, dialect: Dialect, clock: Clock = _system_clock) -> None:
        self.conn: Any = conn  # sqlite3's surface (execute, executemany, close), ``dialect``'s
        self.dialect = dialect
        self.clock = clock

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes ---------------------------------------------------------------------------

    def apply(self, events: Sequence[Event]) -> tuple[ApplyResult, list[Failure]]:
        """Apply a batch in one transaction; if it fails, each event alone.

        Returns what was applied and the events that failed on their own (poison), so one bad
        event never holds back the rest of its batch. An event with text no backend can store
        (``meetsync/storable.py``) fails without reaching the database. An error of the
        database itself (``Dialect.retry_later``: locked, disk full, I/O, connection lost) is no
        event's failure: it is raised (``StoreBusy``) and the caller retries the batch later.
        """
        # One look at the whole batch first: the look at each event costs as much again.
        refused = [] if unstorable(tuple(events)) is None else [
            Failure(event, f"{found}: text with a NUL character or a lone surrogate"
                           " cannot be stored")
            for event in events if (found := unstorable(event)) is not None]
        if refused:
            bad = {id(failure.event) for failure in refused}
            result, failures = self.apply([event for event in events if id(event) not in bad])
            return result, refused + failures
        if not events:
            return ApplyResult(), []
        try:
            return self._transaction(events), []
        except (self.dialect.error, ValueError, TypeError) as exc:
            retry = self.dialect.retry_later(exc)
            if retry is not None:
                raise retry from exc
            if len(events) == 1:  # the event's own: its content, a constraint, a bad value
                return ApplyResult(), [Failure(events[0], _reason(exc))]
        total, failures = ApplyResult(), []
        for event in events:
            result, failed = self.apply([event])
            total.add(result)
            failures.extend(failed)
        return total, failures

    def _transaction(self, events: Sequence[Event]) -> ApplyResult:
        self.conn.execute(self.dialect.begin)
        try:
            self.dialect.lock_appointments(
                self.conn, ((event.provider, event.appointment_id) for event in events))
            result = apply_events(self.conn, events, self.clock())
            self.conn.execute("COMMIT")  # may fail too: a full disk shows here first
        except BaseException:
            self._rollback()
            raise
        return result

    def _rollback(self) -> None:
        """End a failed transaction, unless the database ended it already: SQLite rolls back
        on its own after some errors (a full disk, an I/O error), and a lost PostgreSQL
        connection took its transaction with it. The error that failed it is what counts."""
        if not self.dialect.in_transaction(self.conn):
            return
        with contextlib.suppress(self.dialect.error, StoreError):
            self.conn.execute("ROLLBACK")

    def purge_expired_credentials(self, now: datetime | None = None) -> int:
        """Clear each credential (every provider's) whose own expiry is not after ``now``: a
        ``host_url`` and a ``password`` die separately. Returns the meetings touched."""
        host_url_dead = dead_sql("host_url_expires_at", ":now")
        password_dead = dead_sql("password_expires_at", ":now")
        due = f"""(host_url IS NOT NULL AND {host_url_dead})
               OR (password IS NOT NULL AND {password_dead})"""
        due = self.dialect.skip_locked("meetings", "provider, id", due)
        cur = self.conn.execute(
            f"""
            UPDATE meetings SET
                host_url = CASE WHEN {host_url_dead} THEN NULL ELSE host_url END,
                password = CASE WHEN {password_dead} THEN NULL ELSE password END
            WHERE {due}
            """,
            {"now": iso_utc(now or self.clock())},
        )
        return int(cur.rowcount)

    def add_dead_letter(
        self, event_id: str, appointment_id: str | None, type_: str | None, reason: str,
        attempts: int, payload: str,
    ) -> int:
        """Record an event given up on; ``payload`` must already be redacted.

        Idempotent per event while its letter awaits replay: a worker dying between this write
        and the stream acknowledgement dead-letters the event again on redelivery, and several
        workers holding copies of its entry (claimed from one another) may give up on it at
        once: the look and the write are one transaction, one writer per event at a time.
        """
        self.conn.execute(self.dialect.begin)
        try:
            self.dialect.lock(self.conn, [f"dead_letter/{event_id}"])
            held = self.conn.execute(
                "SELECT id FROM dead_letters WHERE event_id = ? AND replayed_at IS NULL",
                (event_id,),
            ).fetchone()
            if held is None:
                held = self.conn.execute(
                    "INSERT INTO dead_letters (event_id, appointment_id, type, reason, attempts,"
                    " payload, created_at)"
                    f" VALUES (?, ?, ?, ?, ?, ?, {self.dialect.now}) RETURNING id",
                    (event_id, appointment_id, type_, reason, attempts, payload),
                ).fetchone()
            self.conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return int(held[0])

    def dead_letter(self, dead_letter_id: int) -> dict[str, Any] | None:
        """One dead letter, its (redacted) payload included."""
        cur = self.conn.execute(
            "SELECT id, event_id, appointment_id, type, reason, attempts, created_at,"
            " replayed_at, payload FROM dead_letters WHERE id = ?",
            (dead_letter_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        keys = [column[0] for column in cur.description]
        return dict(zip(keys, row, strict=True))

    def dead_letters(self, *, include_replayed: bool = False) -> list[dict[str, Any]]:
        where = "" if include_replayed else "WHERE replayed_at IS NULL"
        cur = self.conn.execute(
            "SELECT id, event_id, appointment_id, type, reason, attempts, created_at, replayed_at"
            f" FROM dead_letters {where} ORDER BY id"
        )
        keys = [column[0] for column in cur.description]
        return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]

    def mark_replayed(self, dead_letter_id: int) -> None:
        self.conn.execute(
            f"UPDATE dead_letters SET replayed_at = {self.dialect.now} WHERE id = ?",
            (dead_letter_id,),
        )

    def start_run(self, window_start: str | None, window_end: str | None) -> int:
        (run_id,) = self.conn.execute(
            "INSERT INTO reconcile_runs (started_at, window_start, window_end, outcome)"
            f" VALUES ({self.dialect.now}, ?, ?, 'running') RETURNING id",
            (window_start, window_end),
        ).fetchone()
        return int(run_id)

    def finish_run(self, run_id: int, **fields: Any) -> None:
        """Record a reconcile run's outcome and counters (``drift``/``errors`` as JSON text)."""
        columns = ", ".join(f"{name} = ?" for name in fields)
        self.conn.execute(
            f"UPDATE reconcile_runs SET {columns}, finished_at = {self.dialect.now} WHERE id = ?",
            (*fields.values(), run_id),
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM reconcile_runs ORDER BY id DESC LIMIT ?", (limit,))
        keys = [column[0] for column in cur.description]
        return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]

    def prune_inbox(self, now: datetime | None = None, keep: timedelta = INBOX_RETENTION) -> int:
        """Forget applied event ids older than ``keep``. Safe: a redelivery that old is older
        than what its rows reflect, so the version guard still rejects it.

        Deleted in chunks, one transaction each, so the applier never waits long for the
        write lock; cost follows the rows forgotten, not the inbox's size (``Dialect``).
        """
        cutoff = ((now or self.clock()) - keep).strftime("%Y-%m-%dT%H:%M:%S")
        return self.dialect.prune_inbox(self.conn, cutoff, PRUNE_CHUNK)

    # --- reads ----------------------------------------------------------------------------

    def meeting(
        self, meeting_id: str, *, provider: str = DEFAULT_PROVIDER, now: datetime | None = None,
        refreshable: bool = False,
    ) -> dict[str, Any] | None:
        """That meeting as the read API serves it (``replaced_by`` set when superseded).

        Each credential is served only on the current meeting of a live appointment, and only
        until it expires. A deleted appointment's meetings read ``canceled``, without a
        ``join_url``. ``refreshable``: the provider renews a dead ``host_url`` on a fetch,
        so a current meeting without one says ``host_url_refresh_pending``."""
        row = self.conn.execute(
            f"SELECT {_MEETING_COLUMNS} FROM meetings m LEFT JOIN appointments a"
            " ON a.provider = m.provider AND a.id = m.appointment_id"
            " WHERE m.provider = ? AND m.id = ?",
            (provider, meeting_id),
        ).fetchone()
        return _meeting_view(row, now or self.clock(), refreshable) if row else None

    def latest_meeting(
        self, meeting_id: str, *, provider: str = DEFAULT_PROVIDER, now: datetime | None = None
    ) -> dict[str, Any] | None:
        """Follow ``replaced_by`` from ``meeting_id`` to the meeting that superseded it last."""
        row = self.conn.execute(
            "SELECT appointment_id FROM meetings WHERE provider = ? AND id = ?",
            (provider, meeting_id),
        ).fetchone()
        return self.current_meeting(row[0], provider=provider, now=now) if row else None

    def current_meeting(
        self, appointment_id: str, *, provider: str = DEFAULT_PROVIDER, now: datetime | None = None,
        refreshable: bool = False,
    ) -> dict[str, Any] | None:
        """The appointment's current meeting, or None when the appointment or meeting is unknown."""
        row = self.conn.execute(
            f"SELECT {_MEETING_COLUMNS} FROM appointments a JOIN meetings m"
            " ON m.provider = a.provider AND m.id = a.meeting_id"
            " WHERE a.provider = ? AND a.id = ?",
            (provider, appointment_id),
        ).fetchone()
        return _meeting_view(row, now or self.clock(), refreshable) if row else None

    def appointment(
        self, appointment_id: str, *, provider: str = DEFAULT_PROVIDER
    ) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, provider, account, meeting_id, status, start_at, end_at, updated_at, "
            "tie_at FROM appointments WHERE provider = ? AND id = ?",
            (provider, appointment_id),
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "provider", "account", "meeting_id", "status", "start_at", "end_at",
                "synced_at")
        view = dict(zip(keys, row, strict=False))
        view["needs_refetch"] = row[8] is not None
        return view

    def participants(self, appointment_id: str, *, provider: str) -> list[dict[str, Any]]:
        """The appointment's participants, by id (empty when none were ever listed)."""
        cur = self.conn.execute(
            "SELECT id, role, unique_id, display_name FROM participants"
            " WHERE provider = :provider AND appointment_id = :appointment ORDER BY id",
            {"provider": provider, "appointment": appointment_id},
        )
        keys = [column[0] for column in cur.description]
        return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]

    def occurrences(self, appointment_id: str, *, provider: str) -> list[dict[str, Any]]:
        """A recurring appointment's occurrences, by start (unknown starts last), then id
        (empty when none were ever listed)."""
        cur = self.conn.execute(
            "SELECT id, start_at, end_at, status FROM occurrences"
            " WHERE provider = :provider AND appointment_id = :appointment"
            " ORDER BY start_at IS NULL, start_at, id",
            {"provider": provider, "appointment": appointment_id},
        )
        keys = [column[0] for column in cur.description]
        return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]

    def linked_meeting(
        self, meeting: dict[str, Any], *, now: datetime | None = None,
        refreshable: Container[str] = frozenset(),
    ) -> dict[str, Any] | None:
        """The meeting another provider mirrors as its own (``id`` and ``external_meeting_id``
        both equal to this one's ``external_meeting_id``: hosted there), served as
        ``current_meeting`` serves it; None when there is none. ``meeting`` is a view from
        ``meeting``/``current_meeting``; ``refreshable``: the providers whose ``host_url`` a
        fetch renews. The linked credentials are served only while ``meeting`` itself is the
        current meeting of a live appointment, as its own would be."""
        external = meeting.get("external_meeting_id")
        if external is None:
            return None
        is_, is_not = self.dialect.is_, self.dialect.is_not
        row = self.conn.execute(
            f"SELECT {_MEETING_COLUMNS}, (CAST(:replaced_by AS TEXT) IS NULL AND EXISTS ("
            "   SELECT 1 FROM appointments o WHERE o.provider = :provider"
            f"   AND o.id = :appointment AND o.meeting_id {is_} :meeting"
            f"   AND o.status {is_not} 'canceled' AND o.status {is_not} 'deleted'))"
            " FROM meetings m LEFT JOIN appointments a"
            " ON a.provider = m.provider AND a.id = m.appointment_id"
            " WHERE m.id = m.external_meeting_id AND m.id = :external"
            f" AND m.provider {is_not} :provider ORDER BY m.provider LIMIT 1",
            {"external": external, "provider": meeting["provider"], "meeting": meeting["id"],
             "appointment": meeting["appointment_id"], "replaced_by": meeting["replaced_by"]},
        ).fetchone()
        if row is None:
            return None
        *columns, serving = row
        view = _meeting_view(tuple(columns), now or self.clock(), columns[0] in refreshable)
        if not serving:
            view.update(host_url=None, password=None, host_url_refresh_pending=False)
        return view

    def credentials_due(
        self, *, provider: str, account: str, now: datetime, starting_before: datetime,
        expiring_before: datetime, limit: int = 1000,
    ) -> list[str]:
        """Appointments whose current meeting needs a fresh ``host_url`` (soonest first): live
        (not canceled or deleted), not over, starting before ``starting_before``, and holding
        no host_url or one that dies before ``expiring_before``."""
        rows = self.conn.execute(
            "SELECT a.id FROM appointments a JOIN meetings m"
            " ON m.provider = a.provider AND m.id = a.meeting_id"
            " WHERE a.provider = :provider AND a.account = :account"
            " AND a.status NOT IN ('canceled', 'deleted')"
            " AND (a.end_at IS NULL OR a.end_at > :now)"
            " AND (a.start_at IS NULL OR a.start_at < :starting_before)"
            " AND (m.host_url IS NULL OR m.host_url_expires_at < :expiring_before)"
            " ORDER BY a.start_at, a.id LIMIT :limit",
            {"provider": provider, "account": account, "now": iso_utc(now),
             "starting_before": iso_utc(starting_before),
             "expiring_before": iso_utc(expiring_before), "limit": limit},
        )
        return [row[0] for row in rows]

    def changes_since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """The change log after ``seq``, oldest first: what downstream apps follow."""
        rows = self.conn.execute(
            "SELECT seq, provider, entity, entity_id, appointment_id, changed_at FROM changes "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        keys = ("seq", "provider", "entity", "entity_id", "appointment_id", "changed_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def appointments_ending_after(
        self, cutoff: str, *, provider: str = DEFAULT_PROVIDER, account: str | None = None
    ) -> list[str]:
        """Appointments (not deleted) that end after ``cutoff`` or have no end time; only
        ``account``'s when given (a sweep covers one account)."""
        rows = self.conn.execute(
            "SELECT id FROM appointments WHERE provider = :provider"
            f" AND (end_at IS NULL OR end_at > :cutoff) AND status {self.dialect.is_not} 'deleted'"
            " AND (CAST(:account AS TEXT) IS NULL OR account = :account)",
            {"provider": provider, "cutoff": cutoff, "account": account},
        )
        return [row[0] for row in rows]

    def snapshots(
        self, appointment_ids: Sequence[str], *, provider: str = DEFAULT_PROVIDER
    ) -> dict[str, dict[str, Any]]:
        """What the mirror holds for each appointment, raw (credentials unmasked): the
        reconciler compares it field by field with the provider."""
        return {
            appointment_id: dict(zip(SNAPSHOT_FIELDS, values, strict=True))
            for appointment_id, values in self.snapshot_values(
                appointment_ids, provider=provider).items()
        }

    def snapshot_values(
        self, appointment_ids: Sequence[str], *, provider: str = DEFAULT_PROVIDER,
        account: str | None = None,
    ) -> dict[str, tuple[Any, ...]]:
        """``snapshots`` as tuples in ``SNAPSHOT_FIELDS`` order (no dict per row: a sweep
        compares every listed appointment); with ``account``, none another account owns."""
        found: dict[str, tuple[Any, ...]] = {}
        owned = "" if account is None else " AND (a.owner_known <> 1 OR a.account = ?)"
        for start in range(0, len(appointment_ids), 500):
            chunk = appointment_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.conn.execute(
                "SELECT a.id, a.status, a.start_at, a.end_at, a.meeting_id, m.status,"
                " m.conferencing_provider, m.external_meeting_id, m.join_url, m.host_url,"
                " m.password, m.error_message FROM appointments a LEFT JOIN meetings m"
                " ON m.provider = a.provider AND m.id = a.meeting_id"
                f" WHERE a.provider = ? AND a.id IN ({marks}){owned}",
                (provider, *chunk) if account is None else (provider, *chunk, account),
            )
            for row in cur:
                found[row[0]] = tuple(row[1:])
        return found

    def owners(
        self, appointment_ids: Sequence[str], *, provider: str = DEFAULT_PROVIDER
    ) -> dict[str, str]:
        """The account each appointment belongs to (the one it was first received under,
        ``store/apply.py``), for those the mirror holds with a known owner: refetches and
        sweeps ask the owner's API, and write nothing for another account's appointments."""
        found: dict[str, str] = {}
        for start in range(0, len(appointment_ids), 500):
            chunk = appointment_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.conn.execute(
                "SELECT id, account FROM appointments WHERE provider = ? AND owner_known = 1"
                f" AND id IN ({marks})",
                (provider, *chunk),
            )
            found.update((row[0], row[1]) for row in cur)
        return found

    def snapshot_times(
        self, appointment_ids: Sequence[str], *, provider: str = DEFAULT_PROVIDER
    ) -> dict[str, int]:
        """When each appointment's newest snapshot was taken (µs): a sweep rotating through
        listed appointments fetches the longest unseen first."""
        found: dict[str, int] = {}
        for start in range(0, len(appointment_ids), 500):
            chunk = appointment_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.conn.execute(
                f"SELECT id, version_at FROM appointments WHERE provider = ? AND id IN ({marks})",
                (provider, *chunk),
            )
            found.update((row[0], row[1]) for row in cur)
        return found

    def ping(self) -> bool:
        return bool(self.conn.execute("SELECT 1").fetchone() == (1,))


def _meeting_view(
    row: tuple[Any, ...], now: datetime, refreshable: bool = False
) -> dict[str, Any]:
    (provider, meeting_id, status, conferencing_provider, external_id, join_url, host_url,
     password, host_url_expires_at, password_expires_at, error, appointment_id, replaced_by,
     updated_at, version_at, appointment_status, current_id) = row
    current = (
        replaced_by is None
        and current_id == meeting_id
        and appointment_status not in ("canceled", "deleted")
    )
    at = iso_utc(now)
    if not current or dead(host_url_expires_at, at):
        host_url = None
    if not current or dead(password_expires_at, at):
        password = None
    if appointment_status == "deleted":
        # Gone at its provider (a deletion, or an API 404): so are its meetings, whatever their
        # last snapshot said. Kept as received, served as canceled, with nothing to join.
        join_url = None
        status = status if status in _NEVER_LIVE else "canceled"
    return {
        "id": meeting_id,
        "object": "appointment_meeting",
        "provider": provider,
        "status": status,
        "conferencing_provider": conferencing_provider,
        "external_meeting_id": external_id,
        "join_url": join_url,
        "host_url": host_url,
        "password": password,
        "host_url_expires_at": host_url_expires_at,
        "host_url_refresh_pending": refreshable and current and host_url is None,
        "password_expires_at": password_expires_at,
        "error_message": error,
        "appointment_id": appointment_id,
        "replaced_by": replaced_by,
        "synced_at": updated_at,
        "source_version_us": version_at,
    }


_NEVER_LIVE = frozenset({"failed", "skipped", "canceled"})
"""Meeting statuses that already say it is not there: a deleted appointment keeps them."""


def mirror_exists(db: str | Path) -> bool:
    """Whether there is a mirror to read: a SQLite file exists; a PostgreSQL database is
    taken to (an opener finds out, ``StoreBusy`` while its tables are missing)."""
    return dialect_for(db).exists(db)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
