"""PostgreSQL for the stages: a private server, the raw baseline's table, and what a run waited on.

Every stage that uses PostgreSQL starts its own server (``meetsync.dev.pg_server``, fsync off, on a
free port): never the machine's own on 5432.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from meetsync.dev.pg_server import PostgresServer
from meetsync.store.postgres import CHANGES_LOCK

COLUMNS = (
    "appointment_id", "status", "start_at", "end_at", "meeting_id", "meeting_status",
    "conferencing_provider", "external_meeting_id", "join_url", "host_url", "password",
    "error_message", "version_at", "version_event",
)
# The apply stage's raw table (one row per event), in PostgreSQL's types.
RAW_TABLE = (
    "CREATE TABLE snapshots (appointment_id TEXT PRIMARY KEY, "
    + ", ".join(f"{name} {'BIGINT' if name == 'version_at' else 'TEXT'}" for name in COLUMNS[1:])
    + ")"
)
_UPDATE = ", ".join(f"{name} = excluded.{name}" for name in COLUMNS[1:])
# The guard our upserts carry: only a newer (occurred_at, event id) lands.
_GUARD = ("WHERE (excluded.version_at, excluded.version_event)"
          " > (snapshots.version_at, snapshots.version_event)")


def upsert_sql(placeholder: str, *, returning: bool) -> str:
    """The raw guarded upsert; ``placeholder`` is ``%s`` (psycopg) or ``$`` (asyncpg: ``$1``…)."""
    marks = [placeholder if placeholder != "$" else f"${n}" for n in range(1, len(COLUMNS) + 1)]
    return (f"INSERT INTO snapshots VALUES ({', '.join(marks)})"
            f" ON CONFLICT (appointment_id) DO UPDATE SET {_UPDATE} {_GUARD}"
            + (" RETURNING version_at" if returning else ""))


@contextmanager
def private_server(work: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL of this run's own, removed afterwards."""
    work.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(work).start()
    try:
        yield server
    finally:
        server.remove()


def socket_url(server: PostgresServer, database: str) -> str:
    """``database`` over the server's Unix socket instead of TCP on 127.0.0.1."""
    return f"postgresql://postgres@/{database}?host={server.base_dir}&port={server.port}"


def copy_upsert(url: str, rows: Sequence[tuple[object, ...]], batch: int) -> float:
    """Seconds to upsert ``rows`` into a new ``snapshots`` table by ``COPY`` into a staging
    table, then one ``INSERT … SELECT … ON CONFLICT`` per ``batch`` rows (the newest row of each
    appointment), one transaction each: the fastest plain way in."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        conn.execute("CREATE UNLOGGED TABLE staging (LIKE snapshots)")
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            with conn.transaction():
                conn.execute("TRUNCATE staging")
                with conn.cursor().copy(f"COPY staging ({', '.join(COLUMNS)}) FROM STDIN"
                                        ) as copy:
                    for one in rows[start : start + batch]:
                        copy.write_row(one)
                # One row per appointment and command (ON CONFLICT's rule): its newest.
                conn.execute("INSERT INTO snapshots SELECT DISTINCT ON (appointment_id) *"
                             " FROM staging ORDER BY appointment_id, version_at DESC,"
                             " version_event DESC ON CONFLICT (appointment_id)"
                             f" DO UPDATE SET {_UPDATE} {_GUARD}")
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE snapshots, staging")
    return seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (``/proc``; 0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return float(sum(values) - idle), float(sum(values))


_TICKS = 100.0  # USER_HZ: 100 on Linux, whatever the kernel's HZ


class ActivitySampler(threading.Thread):
    """What the store's PostgreSQL sessions are doing, sampled every ``interval`` seconds from
    ``pg_stat_activity`` (``application_name = 'meetsync'``), and their backends' pids.

    A session is ``running`` (a statement on the server's CPU), waiting for another
    transaction's ``appointment locks`` or the ``change-log lock``, ``other wait`` (I/O, LWLocks…),
    ``client`` (idle in its transaction: waiting for the worker's next statement) or ``idle``
    (between transactions: the worker is reading Redis, decoding, acknowledging).
    """

    QUERY = (
        "SELECT a.pid, a.state, a.wait_event_type, a.wait_event, l.classid, l.objid"
        " FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted"
        " AND l.locktype = 'advisory' WHERE a.application_name = 'meetsync'"
    )

    def __init__(self, url: str, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.states: Counter[str] = Counter()
        self.pids: set[int] = set()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stopping.is_set():
                for pid, state, wait_type, wait_event, *lock in conn.execute(self.QUERY):
                    self.pids.add(pid)
                    self.states[_classify(state, wait_type, wait_event, tuple(lock))] += 1
                time.sleep(self.interval)

    def shares(self) -> dict[str, float]:
        total = sum(self.states.values()) or 1
        return {name: count / total for name, count in self.states.most_common()}


def _classify(state: str | None, wait_type: str | None, wait_event: str | None,
              lock: tuple[object, ...]) -> str:
    if state == "idle":
        return "idle"
    if state == "idle in transaction" or wait_type == "Client":
        return "client"
    if wait_type == "Lock" and wait_event == "advisory":
        # A bigint key is split in two: its high half in classid, its low half in objid.
        return "change-log lock" if lock == (0, CHANGES_LOCK) else "appointment locks"
    if wait_type == "Lock":
        return f"lock: {wait_event}"
    if wait_type is None:
        return "running"
    return "other wait"


def describe_shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items()) or "no samples"


def database_bytes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0
