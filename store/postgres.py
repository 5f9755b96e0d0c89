"""The mirror on PostgreSQL: its connection, its errors and its locks (``store/dialect.py``
puts them behind the store's ``Dialect``; the schema is ``store/postgres_schema.py``).

Where the store's own statements differ, the dialect gives their words. ``translate`` is what
is left for the statements still written in SQLite's words, the write path's
(``store/rows.py``, ``store/apply.py``) and the tests': it turns their placeholders into
psycopg's, their ``IS``/``IS NOT`` between values, clock and ``json_each`` into PostgreSQL's,
once per statement.

What PostgreSQL adds, for many workers on many hosts:

- **Per-appointment locks, taken in order.** ``apply_events`` first takes a transaction-level
  advisory lock on every appointment of the batch, sorted by key: two workers applying events
  of the same appointment queue up (a replacement chain is resolved by one at a time), and no
  two batches wait on each other in a cycle. Everything else a batch writes belongs to one of
  its appointments.
- **A change log in commit order.** Each statement logs its visible changes into this
  session's pending rows (a temporary table, ``store/postgres_schema.py``'s p005); one
  deferred trigger moves them into ``changes`` at commit, numbered, under one advisory lock
  held only from there to the end of the commit: a follower reading ``seq > n`` never misses a
  row committed late with a smaller number, as a plain sequence would let it. Each commit
  that logged changes sends ``NOTIFY meetsync_changes`` with its highest ``seq``.
- **Timeouts everywhere.** ``statement_timeout``, ``lock_timeout`` (the busy timeout) and
  ``idle_in_transaction_session_timeout`` on every connection. A lock wait, a timeout, a
  deadlock raises ``StoreBusy``; a lost connection, a full disk, a shutdown (``transient``)
  ``StoreUnavailable``: the caller retries (the applier backs off, its entries staying pending
  and spending no attempt) and the next statement reconnects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from meetsync.errors import StoreBusy, StoreUnavailable
from meetsync.redact import masked_url, url_passwords
from meetsync.store import schema

CHANGES_CHANNEL = "meetsync_changes"
"""``LISTEN meetsync_changes``: each commit that logged changes notifies its highest ``seq``."""

STATEMENT_TIMEOUT_MS = 30_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000

CHANGES_LOCK = 0x6D656575
"""The advisory lock a commit holds while it numbers its change rows (store/postgres_schema.py)."""

NOW_SQL = """to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
"""PostgreSQL's clock as the mirror writes its own timestamps (SQLite's ``schema.NOW_SQL``)."""
NOW_SECONDS_SQL = """to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


def is_postgres(db: str) -> bool:
    """``MEETSYNC_DB`` names a PostgreSQL database (a URL), not a SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def shown(db: str) -> str:
    """``MEETSYNC_DB`` as logs may show it: its password masked."""
    return masked_url(db)


_VALUE = r"(?:'[^']*'|\?|[\w.:]+)"


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The store's SQLite statement in PostgreSQL's dialect (psycopg's placeholders)."""
    sql = sql.replace(schema.NOW_SQL, NOW_SQL)
    sql = _distinct(sql.replace("json_each(", "jsonb_array_elements_text("))
    sql = sql.replace("%", "%%")
    sql = re.sub(r"(?<!:):([a-z_]\w*)", r"%(\1)s", sql)
    return sql.replace("?", "%s")


def _distinct(sql: str) -> str:
    """SQLite's ``IS``/``IS NOT`` between two values, in PostgreSQL's words (which it keeps)."""
    sql = re.sub(rf"\bIS NOT (?!NULL\b|DISTINCT\b)({_VALUE})", r"IS DISTINCT FROM \1", sql)
    return re.sub(rf"\bIS (?!NOT\b|NULL\b|DISTINCT\b)({_VALUE})", r"IS NOT DISTINCT FROM \1", sql)


# SQLSTATE classes no event's content causes: connection exception (08), transaction rollback
# (40: serialization failure, deadlock), insufficient resources (53: disk full, out of memory,
# too many connections), object not in prerequisite state (55: a lock not available), operator
# intervention (57: a statement timeout or cancel, admin or crash shutdown), system error (58:
# I/O). https://www.postgresql.org/docs/current/errcodes-appendix.html
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})
_BUSY_STATES = frozenset({"40001", "40P01", "55P03", "57014"})  # a wait, not an outage


def transient(exc: psycopg.Error) -> StoreBusy | None:
    """The store's error for ``exc`` when no event caused it (retry later): ``StoreBusy`` for
    a lock wait, a timeout, a deadlock; ``StoreUnavailable`` for an outage. None for an
    error of what was written (a NUL, a constraint, a value too long for an index)."""
    state = exc.sqlstate
    if state is None:  # raised by the client: the connection went away, a connect timeout
        lost = isinstance(exc, psycopg.OperationalError)
        return StoreUnavailable(_first_line(exc)) if lost else None
    if state in _BUSY_STATES:
        return StoreBusy(_first_line(exc))
    if state[:2] in _TRANSIENT_CLASSES:
        return StoreUnavailable(_first_line(exc))
    return None


class _NoRows:
    """What ``execute`` returns for a ROLLBACK on a connection already lost."""

    rowcount = 0
    description = None

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Any:
        return iter(())


class PgConnection:
    """A psycopg connection with the surface of ``sqlite3.Connection`` the store uses.

    Autocommit, as the store's SQLite connection is: a transaction is an explicit ``BEGIN`` …
    ``COMMIT``. A lost connection is replaced on the next statement.
    """

    dialect = "postgresql"

    def __init__(self, url: str, *, readonly: bool, lock_timeout: float) -> None:
        self.url = url
        self.readonly = readonly
        self.lock_timeout_ms = max(1, int(lock_timeout * 1000))
        self._conn: psycopg.Connection[Any] | None = None
        self._connect()

    def _connect(self) -> None:
        options = (
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
            f" -c lock_timeout={self.lock_timeout_ms}"
            f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"
            " -c timezone=UTC"
            # psycopg prepares a statement run five times; PostgreSQL may then keep a generic
            # plan made while the tables were small (a new mirror): one that scans a
            # provider's every meeting for each id a batch reads. A plan per execution, made
            # for its own parameters and the tables as they are, costs a fraction of a batch.
            " -c plan_cache_mode=force_custom_plan"
            + (" -c default_transaction_read_only=on" if self.readonly else "")
        )
        try:
            self._conn = psycopg.connect(
                self.url, autocommit=True, options=options, connect_timeout=5,
                application_name="meetsync",
            )
        except psycopg.Error as exc:  # unreachable, refused, or a URL libpq cannot parse
            # libpq may quote the URL's parts back (a bad percent-escape in the password)
            reason = _first_line(exc)
            for password in url_passwords(self.url):
                reason = reason.replace(password, "***")
            raise StoreUnavailable(f"PostgreSQL unreachable: {reason}") from exc

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()
        assert self._conn is not None
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        if sql == "ROLLBACK" and (self._conn is None or self._conn.broken):
            return _NoRows()  # the server ended that transaction with the connection
        try:
            return self._live().execute(translate(sql), params)
        except psycopg.Error as exc:
            retry = transient(exc)
            if retry is None:
                raise
            raise retry from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> Any:
        try:
            with self._live().cursor() as cur:
                cur.executemany(translate(sql), list(rows))
                return cur
        except psycopg.Error as exc:
            retry = transient(exc)
            if retry is None:
                raise
            raise retry from exc

    def execute_script(self, script: str) -> None:
        """Run several statements at once (a migration's DDL: no placeholders)."""
        try:
            self._live().execute(script.encode())
        except psycopg.Error as exc:
            retry = transient(exc)
            if retry is None:
                raise
            raise retry from exc

    def stage(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        """COPY ``rows`` into this session's staging table for ``columns`` of ``table``, in the
        caller's transaction; its name, to insert from. Emptied at each commit; made by each
        transaction that needs it if not there yet (a rolled-back one takes its own with it).
        """
        name = f"staged_{table}"
        listed = ", ".join(columns)
        try:
            conn = self._live()
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS"
                         f" SELECT {listed} FROM {table} WITH NO DATA")
            with conn.cursor() as cur, cur.copy(f"COPY {name} ({listed}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            retry = transient(exc)
            if retry is None:
                raise
            raise retry from exc
        return name

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def lock_appointments(conn: PgConnection, keys: Iterable[tuple[str, str]]) -> None:
    """Take the batch's appointment locks (until its commit), in one global order."""
    lock(conn, (f"{provider}/{appointment}" for provider, appointment in keys))


def lock(conn: PgConnection, names: Iterable[str]) -> None:
    """Take transaction-level advisory locks on ``names`` (until the commit), in one global
    order: any two transactions locking overlapping names queue up, never in a cycle."""
    names = sorted(set(names))
    if names:
        conn.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT"
            " hashtextextended(name, 0) AS k FROM unnest(CAST(? AS text[])) AS name"
            " ORDER BY k) AS ordered",
            (names,),
        )
