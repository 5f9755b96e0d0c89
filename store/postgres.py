"""The mirror on PostgreSQL: a connection that speaks the store's SQL, and the schema.

The store's statements are written once, in SQLite's dialect; ``translate`` rewrites the few
places PostgreSQL spells differently (placeholders, ``IS``/``IS NOT`` between values, the clock,
``json_each``), once per statement. Same tables, columns, views and change log as SQLite's
migrations build, so readers, the read API and the Python API don't know which one they have.

What PostgreSQL adds, for many workers on many hosts:

- **Per-appointment locks, taken in order.** ``apply_events`` first takes a transaction-level
  advisory lock on every appointment of the batch, sorted by key: two workers applying events
  of the same appointment queue up (a replacement chain is resolved by one at a time), and no
  two batches wait on each other in a cycle. Everything else a batch writes belongs to one of
  its appointments.
- **A change log in commit order.** ``changes.seq`` is assigned at commit (a deferred trigger,
  under one advisory lock held only from there to the end of the commit): a follower reading
  ``seq > n`` never misses a row committed late with a smaller number, as a plain sequence
  would let it. Each commit that logged changes sends ``NOTIFY meetsync_changes`` with its
  highest ``seq``.
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
from meetsync.store.schema import _LIVE_MEETINGS, _SUBSCRIBER_TABLES, _TIMES_VERSION, NOW_SQL

CHANGES_CHANNEL = "meetsync_changes"
"""``LISTEN meetsync_changes``: each commit that logged changes notifies its highest ``seq``."""

STATEMENT_TIMEOUT_MS = 30_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000

_PG_NOW = """to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
_PG_NOW_SECONDS = """to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


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
    sql = sql.replace(NOW_SQL, _PG_NOW).replace("BEGIN IMMEDIATE", "BEGIN")
    sql = _distinct(sql.replace("json_each(", "jsonb_array_elements_text("))
    sql = sql.replace("%", "%%")
    sql = re.sub(r"(?<!:):([a-z_]\w*)", r"%(\1)s", sql)
    return sql.replace("?", "%s")


def _distinct(sql: str) -> str:
    """SQLite's ``IS``/``IS NOT`` between two values, in PostgreSQL's words."""
    sql = re.sub(rf"\bIS NOT (?!NULL\b)({_VALUE})", r"IS DISTINCT FROM \1", sql)
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


# --- schema ---------------------------------------------------------------------------------

_MIGRATION_LOCK = 0x6D656574  # any constant: one migrator at a time across processes
_CHANGES_LOCK = 0x6D656575

_TABLES = f"""
CREATE TABLE appointments (
    id TEXT NOT NULL,
    provider TEXT NOT NULL,
    meeting_id TEXT,
    status TEXT,
    start_at TEXT,
    end_at TEXT,
    version_at BIGINT NOT NULL,
    version_event TEXT NOT NULL,
    tie_at BIGINT,
    updated_at TEXT NOT NULL,
    no_meeting INTEGER NOT NULL DEFAULT 0,
    named_meeting_id TEXT,
    account TEXT NOT NULL DEFAULT 'default',
    participants_at BIGINT,
    participants_event TEXT,
    occurrences_at BIGINT,
    occurrences_event TEXT,
    PRIMARY KEY (provider, id)
);
CREATE INDEX appointments_end_at ON appointments(end_at);

CREATE TABLE meetings (
    id TEXT NOT NULL,
    provider TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    status TEXT,
    conferencing_provider TEXT,
    external_meeting_id TEXT,
    join_url TEXT,
    host_url TEXT,
    password TEXT,
    error_message TEXT,
    replaced_by TEXT,
    first_seen_at BIGINT NOT NULL,
    first_seen_rank INTEGER NOT NULL,
    version_at BIGINT NOT NULL,
    version_event TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    predecessor INTEGER NOT NULL DEFAULT 0,
    host_url_expires_at TEXT,
    password_expires_at TEXT,
    PRIMARY KEY (provider, id)
);
CREATE INDEX meetings_chain
    ON meetings(provider, appointment_id, first_seen_at, first_seen_rank, id);
CREATE INDEX meetings_self_hosted ON meetings(id) WHERE id = external_meeting_id;

CREATE TABLE participants (
    provider TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    id TEXT NOT NULL,
    role TEXT,
    unique_id TEXT,
    display_name TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (provider, appointment_id, id)
);

CREATE TABLE occurrences (
    provider TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    id TEXT NOT NULL,
    start_at TEXT,
    end_at TEXT,
    status TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (provider, appointment_id, id)
);

-- The inbox. applied_at is indexed here (not in SQLite, whose prune walks rowid).
CREATE TABLE events (
    id TEXT NOT NULL,
    provider TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    type TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    claimed_at BIGINT,
    PRIMARY KEY (provider, id)
);
CREATE INDEX events_applied_at ON events(applied_at);

-- seq: assigned at commit, in commit order (changes_sequence below); NULL only inside the
-- transaction that wrote the row, so no reader ever sees it.
CREATE SEQUENCE changes_seq;
CREATE TABLE changes (
    row_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq BIGINT UNIQUE,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    changed_at TEXT NOT NULL DEFAULT ({_PG_NOW}),
    provider TEXT NOT NULL
);
CREATE INDEX changes_unsequenced ON changes(row_id) WHERE seq IS NULL;

CREATE TABLE dead_letters (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL,
    appointment_id TEXT,
    type TEXT,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    replayed_at TEXT
);

CREATE TABLE reconcile_runs (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    window_start TEXT,
    window_end TEXT,
    outcome TEXT NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    api_calls INTEGER NOT NULL DEFAULT 0,
    appointments_seen INTEGER NOT NULL DEFAULT 0,
    drift TEXT NOT NULL DEFAULT '{{}}',
    repaired INTEGER NOT NULL DEFAULT 0,
    errors TEXT NOT NULL DEFAULT '[]'
);
"""


def _log_trigger(table: str, entity: str, appointment: str, fields: Sequence[str],
                 *, deletes: bool) -> str:
    """A change-log trigger as SQLite's (schema.py): inserts, real changes, and deletes."""
    changed = " OR ".join(f"OLD.{name} IS DISTINCT FROM NEW.{name}" for name in fields)
    events = "INSERT OR UPDATE OR DELETE" if deletes else "INSERT OR UPDATE"
    return f"""
CREATE FUNCTION {table}_logged() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r {table};
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_OP = 'UPDATE' AND NOT ({changed}) THEN RETURN NULL; END IF;
    INSERT INTO changes (entity, entity_id, appointment_id, provider)
    VALUES ('{entity}', r.id, r.{appointment}, r.provider);
    RETURN NULL;
END $$;
CREATE TRIGGER {table}_logged AFTER {events} ON {table}
    FOR EACH ROW EXECUTE FUNCTION {table}_logged();
"""


_CHANGE_LOG = (
    _log_trigger("appointments", "appointment", "id",
                 ("meeting_id", "status", "start_at", "end_at"), deletes=False)
    + _log_trigger("meetings", "meeting", "appointment_id",
                   ("status", "conferencing_provider", "external_meeting_id", "join_url",
                    "host_url", "password", "error_message", "replaced_by"), deletes=False)
    + _log_trigger("participants", "participant", "appointment_id",
                   ("role", "unique_id", "display_name"), deletes=True)
    + _log_trigger("occurrences", "occurrence", "appointment_id",
                   ("start_at", "end_at", "status"), deletes=True)
    + f"""
-- At commit: number this transaction's change rows after every earlier commit's, then tell
-- the listeners. The lock is held from here to the end of the commit only.
-- It fires once per row logged; the first firing numbers them all, the others return at once.
CREATE FUNCTION changes_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('meetsync.sequenced', true) = pg_current_xact_id()::text THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('meetsync.sequenced', pg_current_xact_id()::text, true);
    PERFORM pg_advisory_xact_lock({_CHANGES_LOCK});
    WITH numbered AS (
        SELECT row_id, nextval('changes_seq') AS seq
        FROM (SELECT row_id FROM changes WHERE seq IS NULL ORDER BY row_id) AS pending
    )
    UPDATE changes c SET seq = numbered.seq FROM numbered WHERE c.row_id = numbered.row_id;
    IF FOUND THEN
        PERFORM pg_notify('{CHANGES_CHANNEL}', currval('changes_seq')::text);
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER changes_sequenced AFTER INSERT ON changes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION changes_sequence();
"""
)

# SQLite's view as m008 built it, in PostgreSQL's words.
_VIEWS = _distinct(_LIVE_MEETINGS).replace(
    "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')", _PG_NOW_SECONDS) + ";"

# SQLite's m009, in PostgreSQL's words.
_SUBSCRIBERS = (
    _SUBSCRIBER_TABLES.replace("INTEGER PRIMARY KEY AUTOINCREMENT",
                               "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    .replace("seq INTEGER", "seq BIGINT").replace("_ms INTEGER", "_ms BIGINT")
)

MIGRATIONS: tuple[tuple[str, str], ...] = (
    # The schema SQLite's m001-m007 build, in one step: a PostgreSQL mirror starts there.
    # A later migration is added to both lists.
    ("p001_mirror_as_of_m007", _TABLES + _CHANGE_LOG + _VIEWS),
    ("p002_times_version",  # SQLite's m008
     _TIMES_VERSION.format(integer="BIGINT") + "DROP VIEW live_meetings;" + _VIEWS),
    ("p003_subscribers", _SUBSCRIBERS),
    # SQLite's m010: the inbox records each event's account; an appointment's owner is known.
    ("p004_account_ownership", """
ALTER TABLE events ADD COLUMN account TEXT;
ALTER TABLE appointments ADD COLUMN owner_known INTEGER NOT NULL DEFAULT 0;
"""),
)


def pending(url: str) -> list[str]:
    """The migrations the database at ``url`` lacks (read-only: writes nothing)."""
    conn = PgConnection(url, readonly=True, lock_timeout=5)
    try:
        if conn.execute("SELECT to_regclass('meetsync_migrations')").fetchone()[0] is None:
            return [name for name, _ in MIGRATIONS]
        done = {row[0] for row in conn.execute("SELECT name FROM meetsync_migrations")}
    finally:
        conn.close()
    return [name for name, _ in MIGRATIONS if name not in done]


def require_tables(conn: PgConnection) -> None:
    """A read-only opener's check: no worker (or ``meetsync migrate``) created the mirror yet."""
    if conn.execute("SELECT to_regclass('meetings')").fetchone()[0] is None:
        raise StoreBusy("the mirror's tables do not exist yet: start a worker or run "
                        "`meetsync migrate`")


def migrate(conn: PgConnection) -> list[str]:
    """Apply the migrations not yet applied, in one transaction (PostgreSQL's DDL is
    transactional) under a lock: several processes may start on a new database at once."""
    conn.execute("BEGIN")
    try:
        conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS meetsync_migrations"
            " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM meetsync_migrations")}
        applied = []
        for name, script in MIGRATIONS:
            if name in done:
                continue
            conn._live().execute(script.encode())  # DDL: no placeholders to translate
            conn.execute(
                f"INSERT INTO meetsync_migrations (name, applied_at) VALUES (?, {NOW_SQL})",
                (name,),
            )
            applied.append(name)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return applied
