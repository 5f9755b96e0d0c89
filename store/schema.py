"""The mirror's schema on SQLite: the steps that built it, in order (``store/migrations.py``
lists them beside PostgreSQL's, and applies each once).

Tables downstream apps may read (documented in docs/mirror.md):

- ``appointments``  one row per appointment; ``meeting_id`` is its current meeting.
- ``meetings``      one row per meeting id ever seen; ``replaced_by`` is NULL while current.
- ``participants``  one row per participant of an appointment, as its newest snapshot that
                    listed them says (``appointments.participants_at``/``participants_event``).
- ``occurrences``   one row per occurrence of a recurring appointment, as its newest snapshot
                    that listed them says (``appointments.occurrences_at``/``occurrences_event``).
- ``changes``       the change log: one row per visible change, followed by ``seq``.
- ``live_meetings`` a view of ``meetings`` that never shows a dead credential (each credential
                    dies at its own ``*_expires_at``, the provider package's word).

Internal: ``events`` (the inbox of applied event ids), ``dead_letters``, ``reconcile_runs``.
"""

from __future__ import annotations

from sqlite_utils import Database

from meetsync.credentials import live_sql
from meetsync.events import LEGACY_PROVIDER, MEETING_FIELDS

NOW_SQL = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
"""SQLite's clock as the mirror writes its own timestamps (``updated_at`` and the like)."""


def _changed(fields: tuple[str, ...]) -> str:
    return " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in fields)


def _change_triggers(*, provider: bool) -> str:
    """The triggers that write the change log (with the row's provider from m004 on)."""
    column, value = (", provider", ", NEW.provider") if provider else ("", "")

    def log(entity: str, appointment: str) -> str:
        return (f"INSERT INTO changes (entity, entity_id, appointment_id{column})"
                f" VALUES ('{entity}', NEW.id, NEW.{appointment}{value});")

    return f"""
        CREATE TRIGGER appointments_inserted AFTER INSERT ON appointments BEGIN
            {log("appointment", "id")}
        END;
        CREATE TRIGGER appointments_updated AFTER UPDATE ON appointments
        WHEN {_changed(("meeting_id", "status", "start_at", "end_at"))} BEGIN
            {log("appointment", "id")}
        END;
        CREATE TRIGGER meetings_inserted AFTER INSERT ON meetings BEGIN
            {log("meeting", "appointment_id")}
        END;
        CREATE TRIGGER meetings_updated AFTER UPDATE ON meetings
        WHEN {_changed((*MEETING_FIELDS, "replaced_by"))} BEGIN
            {log("meeting", "appointment_id")}
        END;
        """


def m001_mirror(db: Database) -> None:
    # version_at/version_event: the (occurred_at, event id) of the snapshot a row reflects; a
    # write lands only when its own pair is greater, so stale events are rejected in SQL.
    # first_seen_at/first_seen_rank order an appointment's meetings into a replacement chain.
    db.executescript(
        f"""
        CREATE TABLE appointments (
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            meeting_id TEXT,
            status TEXT,
            start_at TEXT,
            end_at TEXT,
            version_at INTEGER NOT NULL,
            version_event TEXT NOT NULL,
            tie_at INTEGER,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX appointments_end_at ON appointments(end_at);

        CREATE TABLE meetings (
            id TEXT PRIMARY KEY,
            appointment_id TEXT NOT NULL,
            status TEXT,
            conferencing_provider TEXT,
            external_meeting_id TEXT,
            join_url TEXT,
            host_url TEXT,
            password TEXT,
            error_message TEXT,
            replaced_by TEXT,
            first_seen_at INTEGER NOT NULL,
            first_seen_rank INTEGER NOT NULL,
            version_at INTEGER NOT NULL,
            version_event TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX meetings_chain
            ON meetings(appointment_id, first_seen_at, first_seen_rank, id);

        CREATE TABLE events (
            id TEXT PRIMARY KEY,
            appointment_id TEXT NOT NULL,
            type TEXT NOT NULL,
            occurred_at INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            applied_at TEXT NOT NULL
        );

        CREATE TABLE changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            entity TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            appointment_id TEXT NOT NULL,
            changed_at TEXT NOT NULL DEFAULT ({NOW_SQL})
        );

        {_change_triggers(provider=False)}

        -- host_url is a credential that dies 24 h after the appointment ends (docs/mirror.md);
        -- the password goes with it.
        CREATE VIEW live_meetings AS
        SELECT m.id, m.appointment_id, m.status, m.conferencing_provider,
               m.external_meeting_id, m.join_url,
               CASE WHEN live THEN m.host_url END AS host_url,
               CASE WHEN live THEN m.password END AS password,
               m.error_message, m.replaced_by, m.updated_at
        FROM (
            SELECT m.*, (m.replaced_by IS NULL AND (a.end_at IS NULL OR
                   a.end_at > strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-24 hours'))) AS live
            FROM meetings m LEFT JOIN appointments a ON a.id = m.appointment_id
        ) AS m;
        """
    )


def m002_operations(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
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
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            window_start TEXT,
            window_end TEXT,
            outcome TEXT NOT NULL,
            pages INTEGER NOT NULL DEFAULT 0,
            api_calls INTEGER NOT NULL DEFAULT 0,
            appointments_seen INTEGER NOT NULL DEFAULT 0,
            drift TEXT NOT NULL DEFAULT '{}',
            repaired INTEGER NOT NULL DEFAULT 0,
            errors TEXT NOT NULL DEFAULT '[]'
        );
        """
    )


def _live_meetings(*, provider: bool) -> str:
    """The view as m003 and m004 built it: a credential is live only on the appointment's
    current meeting, while the appointment is not canceled or gone, until 24 h after it ends
    (what every credential's lifetime was taken to be before m005)."""
    column, join = ("m.provider, ", "a.provider = m.provider AND ") if provider else ("", "")
    return f"""
CREATE VIEW live_meetings AS
SELECT {column}m.id, m.appointment_id, m.status, m.conferencing_provider,
       m.external_meeting_id, m.join_url,
       CASE WHEN live THEN m.host_url END AS host_url,
       CASE WHEN live THEN m.password END AS password,
       m.error_message, m.replaced_by, m.updated_at
FROM (
    SELECT m.*, (m.replaced_by IS NULL AND a.meeting_id IS m.id
                 AND a.status IS NOT 'canceled' AND a.status IS NOT 'deleted'
                 AND (a.end_at IS NULL OR
                      a.end_at > strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-24 hours'))) AS live
    FROM meetings m LEFT JOIN appointments a ON {join}a.id = m.appointment_id
) AS m
"""


_TRUSTED_CLOCK_SECONDS = 300
"""The skew tolerance's default, for healing rows written before the receiver enforced it."""


def _micros_sql(column: str) -> str:
    return f"CAST(ROUND((julianday({column}) - 2440587.5) * 86400000000) AS INTEGER)"


def m003_time_and_absence(db: Database) -> None:
    # no_meeting: the newest snapshot says the appointment has no meeting (meeting_id NULL);
    # named_meeting_id: the meeting it names, current unless a replacement superseded it
    # (predecessor: named as the meeting replaced).
    # claimed_at: the provider's own date of an event re-dated to its receipt (events.py).
    # A row dated beyond when it was written plus the tolerance was pinned by a provider clock
    # running ahead (an earlier release trusted it): re-date it to when it was written, so any
    # later event, and the next reconcile's snapshot, wins again.
    db.executescript(
        f"""
        ALTER TABLE appointments ADD COLUMN no_meeting INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE appointments ADD COLUMN named_meeting_id TEXT;
        UPDATE appointments SET named_meeting_id = meeting_id;
        ALTER TABLE meetings ADD COLUMN predecessor INTEGER NOT NULL DEFAULT 0;
        UPDATE meetings SET predecessor = 1 WHERE first_seen_rank = 0;
        ALTER TABLE events ADD COLUMN claimed_at INTEGER;
        UPDATE appointments SET version_at = {_micros_sql("updated_at")}
        WHERE version_at > {_micros_sql("updated_at")} + {_TRUSTED_CLOCK_SECONDS * 1_000_000};
        UPDATE meetings SET version_at = {_micros_sql("updated_at")}
        WHERE version_at > {_micros_sql("updated_at")} + {_TRUSTED_CLOCK_SECONDS * 1_000_000};
        DROP VIEW live_meetings;
        {_live_meetings(provider=False)};
        """
    )


# The rebuilt tables: ids are unique only within a provider (two providers may both use
# ``appt_``). Same columns as before, ``provider`` second; still rowid tables (the inbox prune
# walks rowid).
_KEYED_BY_PROVIDER = {
    "appointments": """
        id TEXT NOT NULL,
        provider TEXT NOT NULL,
        meeting_id TEXT,
        status TEXT,
        start_at TEXT,
        end_at TEXT,
        version_at INTEGER NOT NULL,
        version_event TEXT NOT NULL,
        tie_at INTEGER,
        updated_at TEXT NOT NULL,
        no_meeting INTEGER NOT NULL DEFAULT 0,
        named_meeting_id TEXT""",
    "meetings": """
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
        first_seen_at INTEGER NOT NULL,
        first_seen_rank INTEGER NOT NULL,
        version_at INTEGER NOT NULL,
        version_event TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        predecessor INTEGER NOT NULL DEFAULT 0""",
    "events": """
        id TEXT NOT NULL,
        provider TEXT NOT NULL,
        appointment_id TEXT NOT NULL,
        type TEXT NOT NULL,
        occurred_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        applied_at TEXT NOT NULL,
        claimed_at INTEGER""",
}

# Before m004 every row was the legacy provider's; a meeting or event takes its appointment's.
_PROVIDER_OF_APPOINTMENT = f"""COALESCE(
    (SELECT a.provider FROM old_appointments a WHERE a.id = o.appointment_id),
    '{LEGACY_PROVIDER}')"""


def m004_provider_identity(db: Database) -> None:
    # SQLite cannot change a primary key in place: each table is rebuilt under its name, its
    # rows copied in rowid order (the inbox prune relies on rowid following insertion order).
    db.executescript(
        f"""
        DROP VIEW live_meetings;
        DROP TRIGGER appointments_inserted;
        DROP TRIGGER appointments_updated;
        DROP TRIGGER meetings_inserted;
        DROP TRIGGER meetings_updated;
        DROP INDEX appointments_end_at;
        DROP INDEX meetings_chain;
        ALTER TABLE changes ADD COLUMN provider TEXT NOT NULL DEFAULT '{LEGACY_PROVIDER}';
        """
    )
    for table in _KEYED_BY_PROVIDER:
        db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    for table, columns in _KEYED_BY_PROVIDER.items():
        old = [c.name for c in db[f"old_{table}"].columns]
        provider = "o.provider" if "provider" in old else _PROVIDER_OF_APPOINTMENT
        kept = ", ".join(c for c in old if c != "provider")
        db.execute(f"CREATE TABLE {table} ({columns},\n        PRIMARY KEY (provider, id)\n)")
        db.execute(
            f"INSERT INTO {table} (provider, {kept})"
            f" SELECT {provider}, {kept} FROM old_{table} o ORDER BY o.rowid"
        )
    db.executescript(
        f"""
        DROP TABLE old_events;
        DROP TABLE old_meetings;
        DROP TABLE old_appointments;
        CREATE INDEX appointments_end_at ON appointments(end_at);
        CREATE INDEX meetings_chain
            ON meetings(provider, appointment_id, first_seen_at, first_seen_rank, id);
        {_change_triggers(provider=True)}
        {_live_meetings(provider=True)};
        """
    )


_EXPIRY_OF_APPOINTMENT = """(SELECT strftime('%Y-%m-%dT%H:%M:%SZ', a.end_at, '+24 hours')
    FROM appointments a WHERE a.provider = meetings.provider AND a.id = meetings.appointment_id)"""
"""What releases before m005 took every credential's expiry to be: its appointment's end + 24 h
(NULL when the end is unknown)."""


def live_meetings(*, is_: str = "IS", is_not: str = "IS NOT",
                  now_seconds: str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')") -> str:
    """The view as m005 and later build it, in a dialect's words: ``is_``/``is_not`` compare
    two values, NULL included; ``now_seconds`` is the clock to the second.

    A credential is live only on the appointment's current meeting, while the appointment is
    not canceled or gone, until its own expiry (NULL: the provider gives it no end). A gone
    (deleted) appointment's meetings read canceled, without a join URL (m008; as the read API
    serves them)."""
    return f"""
CREATE VIEW live_meetings AS
SELECT m.provider, m.id, m.appointment_id,
       CASE WHEN gone AND m.status NOT IN ('failed', 'skipped') THEN 'canceled'
            ELSE m.status END AS status,
       m.conferencing_provider, m.external_meeting_id,
       CASE WHEN gone THEN NULL ELSE m.join_url END AS join_url,
       CASE WHEN is_current
                 AND {live_sql('m.host_url_expires_at', 'now_utc')}
            THEN m.host_url END AS host_url,
       CASE WHEN is_current
                 AND {live_sql('m.password_expires_at', 'now_utc')}
            THEN m.password END AS password,
       m.error_message, m.replaced_by, m.updated_at,
       m.account, m.host_url_expires_at, m.password_expires_at
FROM (
    SELECT m.*, a.account, {now_seconds} AS now_utc,
           (m.replaced_by IS NULL AND a.meeting_id {is_} m.id
            AND a.status {is_not} 'canceled' AND a.status {is_not} 'deleted') AS is_current,
           (a.status {is_} 'deleted') AS gone
    FROM meetings m LEFT JOIN appointments a
        ON a.provider = m.provider AND a.id = m.appointment_id
) AS m
"""


LIVE_MEETINGS = live_meetings()


def m005_account_and_credential_expiry(db: Database) -> None:
    # account: the configured account an appointment came through ('default' for rows written
    # before accounts existed, when there was only one).
    # *_expires_at: when each credential dies, as its provider package says; rows written
    # before m005 get what that release assumed.
    db.executescript(
        f"""
        ALTER TABLE appointments ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE meetings ADD COLUMN host_url_expires_at TEXT;
        ALTER TABLE meetings ADD COLUMN password_expires_at TEXT;
        UPDATE meetings SET host_url_expires_at = {_EXPIRY_OF_APPOINTMENT},
                            password_expires_at = {_EXPIRY_OF_APPOINTMENT};
        DROP VIEW live_meetings;
        {LIVE_MEETINGS};
        """
    )


def _participant_triggers() -> str:
    """The change log's participant rows: a delete logs the row as it was (OLD)."""

    def log(row: str) -> str:
        return ("INSERT INTO changes (entity, entity_id, appointment_id, provider)"
                f" VALUES ('participant', {row}.id, {row}.appointment_id, {row}.provider);")

    return f"""
        CREATE TRIGGER participants_inserted AFTER INSERT ON participants BEGIN
            {log("NEW")}
        END;
        CREATE TRIGGER participants_updated AFTER UPDATE ON participants
        WHEN {_changed(("role", "unique_id", "display_name"))} BEGIN
            {log("NEW")}
        END;
        CREATE TRIGGER participants_deleted AFTER DELETE ON participants BEGIN
            {log("OLD")}
        END;
        """


def m006_participants(db: Database) -> None:
    # participants_at/participants_event: the (occurred_at, event id) of the newest snapshot
    # that listed the appointment's participants (NULL: none has); a set is replaced only by a
    # snapshot whose pair is greater, whether or not its appointment fields landed, so the set
    # is a function of the events seen.
    # meetings_self_hosted: a provider's own meetings (id = external_meeting_id), which another
    # provider's meeting hosted there links to; only those rows are indexed.
    db.executescript(
        f"""
        ALTER TABLE appointments ADD COLUMN participants_at INTEGER;
        ALTER TABLE appointments ADD COLUMN participants_event TEXT;
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
        {_participant_triggers()}
        CREATE INDEX meetings_self_hosted ON meetings(id) WHERE id = external_meeting_id;
        """
    )


def _occurrence_triggers() -> str:
    """The change log's occurrence rows: a delete logs the row as it was (OLD)."""

    def log(row: str) -> str:
        return ("INSERT INTO changes (entity, entity_id, appointment_id, provider)"
                f" VALUES ('occurrence', {row}.id, {row}.appointment_id, {row}.provider);")

    return f"""
        CREATE TRIGGER occurrences_inserted AFTER INSERT ON occurrences BEGIN
            {log("NEW")}
        END;
        CREATE TRIGGER occurrences_updated AFTER UPDATE ON occurrences
        WHEN {_changed(("start_at", "end_at", "status"))} BEGIN
            {log("NEW")}
        END;
        CREATE TRIGGER occurrences_deleted AFTER DELETE ON occurrences BEGIN
            {log("OLD")}
        END;
        """


def m007_occurrences(db: Database) -> None:
    # occurrences_at/occurrences_event: the (occurred_at, event id) of the newest snapshot that
    # listed the appointment's occurrences (NULL: none has); the set is guarded as participants
    # are (m006): replaced only by a snapshot whose pair is greater.
    db.executescript(
        f"""
        ALTER TABLE appointments ADD COLUMN occurrences_at INTEGER;
        ALTER TABLE appointments ADD COLUMN occurrences_event TEXT;
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
        {_occurrence_triggers()}
        """
    )


TIMES_VERSION = """
        ALTER TABLE appointments ADD COLUMN times_at {integer};
        ALTER TABLE appointments ADD COLUMN times_event TEXT;
        UPDATE appointments SET times_at = version_at, times_event = version_event;
        """
"""times_at/times_event: the (occurred_at, event id) of the newest snapshot that gave the
appointment's times. A snapshot without times says nothing about them (a deletion may carry
none): it keeps them, and an older snapshot with times still applies them if no newer one gave
any, so the times are a function of the events seen. Rows written before: their times are
their newest snapshot's (it always wrote them)."""


SUBSCRIBER_TABLES = """
        CREATE TABLE subscriber_cursors (
            name TEXT PRIMARY KEY,
            seq INTEGER NOT NULL DEFAULT 0,
            sent INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            dead INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            failing_since_ms INTEGER,
            last_error TEXT,
            disabled_at TEXT,
            disabled_reason TEXT,
            disabled_url TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE subscriber_dead_letters (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            subscriber TEXT NOT NULL,
            seq INTEGER NOT NULL,
            webhook_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        """
"""Each subscriber's own cursor on the change log (``seq``: the last change it acknowledged,
or that was skipped for it), its counters, the change it is failing on (since when, how many
attempts), whether a 410 disabled it (``disabled_url``: a digest of the URL it answered from),
and the changes given up on for it (store/subscribers.py)."""
