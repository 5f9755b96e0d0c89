"""What differs between the mirror's two databases, as one object at the store's edge.

The ``Store`` and the operators' commands ask their ``Dialect`` instead of asking which
database they have::

    Dialect                 the protocol below
    ├── SQLite              a file (the default): one writer at a time, rowid order
    └── PostgreSQL          a ``postgresql://`` URL: many writers, per-appointment locks

Each connects (with its timeouts), raises the store's own errors for a lock or an outage
(``meetsync/errors.py``: ``StoreBusy``, ``StoreUnavailable``), takes the locks a transaction
needs, spells the statements that differ, and applies the one migration list
(``store/migrations.py``), recording what it applied under the names its mirrors know.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import psycopg
from sqlite_utils import Database

from meetsync.errors import StoreBusy, StoreUnavailable
from meetsync.store import migrations, postgres
from meetsync.store.schema import NOW_SQL


class Dialect(Protocol):
    """A database the mirror lives in, as the store needs it."""

    name: str
    error: type[Exception]
    """The driver's base error: what a failed statement may raise besides the store's own."""
    begin: str
    """The statement that opens a write transaction."""
    now: str
    """The clock as the mirror writes its own timestamps (``updated_at`` and the like)."""
    is_: str
    """Equality that holds between two NULLs: ``a {is_} b``."""
    is_not: str
    """Its negation: ``a {is_not} b`` holds when exactly one is NULL."""

    def exists(self, target: str | Path) -> bool:
        """Whether there is a mirror at ``target`` to read."""

    def connect(self, target: str | Path, *, readonly: bool, busy_timeout: float) -> Any:
        """A connection with ``sqlite3.Connection``'s surface, in autocommit: a transaction
        is an explicit ``begin`` … ``COMMIT``. ``busy_timeout`` bounds a lock wait."""

    def retry_later(self, exc: BaseException) -> StoreBusy | None:
        """The store's error for ``exc`` when the database, not what was written, failed."""

    def in_transaction(self, conn: Any) -> bool:
        """Whether a failed transaction may still need its ``ROLLBACK``."""

    def lock(self, conn: Any, names: Iterable[str]) -> None:
        """Make the open write transaction the only one holding ``names`` until it ends."""

    def lock_appointments(self, conn: Any, keys: Iterable[tuple[str, str]]) -> None:
        """``lock`` on a batch's appointments, (provider, id) each."""

    def skip_locked(self, table: str, key: str, where: str) -> str:
        """``where`` narrowed to the rows no other transaction holds now."""

    def prune_inbox(self, conn: Any, cutoff: str, chunk: int) -> int:
        """Delete the inbox's rows applied before ``cutoff``, ``chunk`` at a time."""

    def require_tables(self, conn: Any) -> None:
        """A read-only opener's check that the mirror's tables exist (``StoreBusy``)."""

    def migrate(self, conn: Any) -> list[str]:
        """Apply the pending migrations under the write lock; their names, in order."""

    def pending(self, target: str | Path) -> list[str]:
        """The migrations the mirror at ``target`` lacks (read-only: writes nothing)."""


def dialect_for(target: str | Path) -> Dialect:
    """``MEETSYNC_DB``'s dialect: a ``postgresql://`` URL, or else a SQLite file."""
    return POSTGRESQL if postgres.is_postgres(str(target)) else SQLITE


# --- SQLite ---------------------------------------------------------------------------------

# SQLite's primary result codes no event's content causes: https://sqlite.org/rescode.html
_SQLITE_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_UNAVAILABLE = frozenset({
    7,  # SQLITE_NOMEM
    8,  # SQLITE_READONLY (the file or its directory lost write permission)
    9,  # SQLITE_INTERRUPT
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL: the disk (or max_page_count)
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
})


def _sqlite_retry_later(exc: BaseException) -> StoreBusy | None:
    if isinstance(exc, StoreBusy):
        return exc
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by the driver itself, not by SQLite: it gives no result code
        message = str(exc)
        busy = isinstance(exc, sqlite3.OperationalError) and (
            "locked" in message or "busy" in message)
        return StoreBusy(message) if busy else None
    if code & 0xFF in _SQLITE_BUSY:
        return StoreBusy(str(exc))
    if code & 0xFF in _SQLITE_UNAVAILABLE:
        return StoreUnavailable(str(exc))
    return None


class _SqliteConnection(sqlite3.Connection):
    """SQLite's connection raising the store's errors at its edge: a lock or an outage leaves
    as ``StoreBusy``/``StoreUnavailable``, so no caller reads a driver's message; an error of
    the data (a constraint, a bad value) leaves as the driver raised it."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            retry = _sqlite_retry_later(exc)
            if retry is None:
                raise
            raise retry from exc

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as exc:
            retry = _sqlite_retry_later(exc)
            if retry is None:
                raise
            raise retry from exc


class SQLite:
    """A mirror in a SQLite file, in WAL mode: ``BEGIN IMMEDIATE`` makes a transaction the
    only writer, so it needs no lock of its own."""

    name = "sqlite"
    error: type[Exception] = sqlite3.Error
    begin = "BEGIN IMMEDIATE"
    now = NOW_SQL
    is_ = "IS"
    is_not = "IS NOT"

    def exists(self, target: str | Path) -> bool:
        return Path(target).exists()

    def connect(self, target: str | Path, *, readonly: bool, busy_timeout: float) -> Any:
        path = Path(target)
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=busy_timeout,
                isolation_level=None, check_same_thread=False, factory=_SqliteConnection,
            )
        else:
            if not path.exists():
                # The mirror holds credentials: readable by its owner only (WAL files follow).
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False,
                factory=_SqliteConnection,
            )
        try:
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # 16 MiB of page cache instead of 2: the inbox and the mirror's indexes take
            # random-key inserts, and past a few MiB every batch re-reads pages (+10-15 %
            # applied events/s).
            conn.execute("PRAGMA cache_size = -16384")
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if not readonly:
                # A checkpoint every ~40 MiB of WAL instead of every 4 MiB (the default 1,000
                # pages): a batch dirties pages all over the mirror's indexes, and at the
                # default nearly every commit checkpointed (and synced), ~1/4 of a drained
                # batch's time; fewer checkpoints copy a page rewritten by many batches once.
                # The WAL file keeps that size on disk.
                conn.execute("PRAGMA wal_autocheckpoint = 10000")
        except BaseException:
            conn.close()  # e.g. busy: the caller retries with a new connection
            raise
        return conn

    def retry_later(self, exc: BaseException) -> StoreBusy | None:
        return _sqlite_retry_later(exc)

    def in_transaction(self, conn: Any) -> bool:
        # SQLite rolls back on its own after some errors (a full disk, an I/O error).
        return bool(conn.in_transaction)

    def lock(self, conn: Any, names: Iterable[str]) -> None:
        """Nothing to take: ``BEGIN IMMEDIATE`` already made this the only writer."""

    def lock_appointments(self, conn: Any, keys: Iterable[tuple[str, str]]) -> None:
        """Nothing to take: ``BEGIN IMMEDIATE`` already made this the only writer."""

    def skip_locked(self, table: str, key: str, where: str) -> str:
        return where  # one writer: no row is held by another

    def prune_inbox(self, conn: Any, cutoff: str, chunk: int) -> int:
        # Rows are appended in applied_at order, so walking rowid from the start to the first
        # row still kept finds every row before it old, with no index to pay on every insert.
        # Whatever an out-of-order clock leaves behind that boundary waits for a later prune.
        boundary = conn.execute(
            "SELECT rowid FROM events WHERE applied_at >= ? ORDER BY rowid LIMIT 1", (cutoff,)
        ).fetchone()
        below = boundary[0] if boundary else 2**63 - 1
        return _delete_in_chunks(
            conn, "DELETE FROM events WHERE rowid IN"
            " (SELECT rowid FROM events WHERE rowid < ? ORDER BY rowid LIMIT ?)", below, chunk)

    def require_tables(self, conn: Any) -> None:
        """Nothing to check: a reader opens only a file that exists."""

    def migrate(self, conn: Any) -> list[str]:
        # Several processes may open a new mirror at once: migrate under the write lock.
        db = Database(conn)
        conn.execute(self.begin)
        try:
            pending = [m.name for m in migrations.SQLITE.pending(db)]
            migrations.SQLITE.apply(db)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return pending

    def pending(self, target: str | Path) -> list[str]:
        conn = sqlite3.connect(f"file:{Path(target)}?mode=ro", uri=True, timeout=30)
        try:
            return [m.name for m in migrations.SQLITE.pending(Database(conn))]
        finally:
            conn.close()


# --- PostgreSQL -----------------------------------------------------------------------------

_MIGRATION_LOCK = 0x6D656574  # any constant: one migrator at a time across processes


class PostgreSQL:
    """A mirror in a PostgreSQL database (``store/postgres.py``): many writers, each batch
    holding advisory locks on its appointments."""

    name = "postgresql"
    error: type[Exception] = psycopg.Error
    begin = "BEGIN"
    now = postgres.NOW_SQL
    is_ = "IS NOT DISTINCT FROM"
    is_not = "IS DISTINCT FROM"

    def exists(self, target: str | Path) -> bool:
        return True  # taken to: an opener finds out (StoreBusy while its tables are missing)

    def connect(self, target: str | Path, *, readonly: bool,
                busy_timeout: float) -> postgres.PgConnection:
        return postgres.PgConnection(str(target), readonly=readonly, lock_timeout=busy_timeout)

    def retry_later(self, exc: BaseException) -> StoreBusy | None:
        if isinstance(exc, StoreBusy):
            return exc
        return postgres.transient(exc) if isinstance(exc, psycopg.Error) else None

    def in_transaction(self, conn: Any) -> bool:
        return True  # unknown without a round trip; a ROLLBACK on a lost connection is a no-op

    def lock(self, conn: Any, names: Iterable[str]) -> None:
        postgres.lock(conn, names)

    def lock_appointments(self, conn: Any, keys: Iterable[tuple[str, str]]) -> None:
        postgres.lock_appointments(conn, keys)

    def skip_locked(self, table: str, key: str, where: str) -> str:
        # Rows an applier holds now wait for the next pass, never a deadlock.
        return f"({key}) IN (SELECT {key} FROM {table} WHERE {where} FOR UPDATE SKIP LOCKED)"

    def prune_inbox(self, conn: Any, cutoff: str, chunk: int) -> int:
        # No rowid to walk: PostgreSQL's inbox indexes applied_at instead.
        return _delete_in_chunks(
            conn, "DELETE FROM events WHERE (provider, id) IN (SELECT provider, id FROM events"
            " WHERE applied_at < ? LIMIT ? FOR UPDATE SKIP LOCKED)", cutoff, chunk)

    def require_tables(self, conn: Any) -> None:
        """A read-only opener's check: no worker (or ``meetsync migrate``) created it yet."""
        if conn.execute("SELECT to_regclass('meetings')").fetchone()[0] is None:
            raise StoreBusy("the mirror's tables do not exist yet: start a worker or run "
                            "`meetsync migrate`")

    def migrate(self, conn: Any) -> list[str]:
        # PostgreSQL's DDL is transactional: every pending step in one transaction, under a
        # lock, since several processes may start on a new database at once.
        conn.execute(self.begin)
        try:
            conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS meetsync_migrations"
                " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM meetsync_migrations")}
            applied = []
            for step in migrations.postgresql_steps():
                if step.name in done:
                    continue
                conn.execute_script(step.script)
                conn.execute(
                    f"INSERT INTO meetsync_migrations (name, applied_at) VALUES (?, {self.now})",
                    (step.name,),
                )
                applied.append(step.name)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return applied

    def pending(self, target: str | Path) -> list[str]:
        conn = self.connect(target, readonly=True, busy_timeout=5)
        try:
            names = [step.name for step in migrations.postgresql_steps()]
            if conn.execute("SELECT to_regclass('meetsync_migrations')").fetchone()[0] is None:
                return names
            done = {row[0] for row in conn.execute("SELECT name FROM meetsync_migrations")}
        finally:
            conn.close()
        return [name for name in names if name not in done]


SQLITE: Dialect = SQLite()
POSTGRESQL: Dialect = PostgreSQL()

def _delete_in_chunks(conn: Any, sql: str, bound: object, chunk: int) -> int:
    """Run ``sql`` (a DELETE of at most ``chunk`` rows below ``bound``) until it deletes fewer
    than ``chunk``: short transactions, so no writer waits behind one long delete. The count
    deleted."""
    pruned = 0
    while True:
        deleted = int(conn.execute(sql, (bound, chunk)).rowcount)
        pruned += deleted
        if deleted < chunk:
            return pruned
