"""Prune: one hourly inbox prune (forget event ids applied over 30 days ago) on an inbox of 1M
and 10M rows spread evenly over 30 days and 1 hour: the steady state, where each prune forgets
the oldest hour (1/721 of the rows).

Ours is ``Store.prune_inbox`` (walks ``rowid`` from the start to the first row still kept,
deletes before it in chunks); the baseline is the release-0.1 prune it replaced,
``DELETE FROM events WHERE applied_at < ?``, which reads the whole table. Both run on identical
copies of the same mirror. Lower is better: the figure is milliseconds per prune.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Figure, Options, StageResult
from meetsync.store import open_store

NOW = datetime(2030, 1, 31, 0, 30, tzinfo=UTC)
KEEP = timedelta(days=30)
SPAN = KEEP + timedelta(hours=1)


def build(path: Path, rows: int) -> None:
    """A migrated mirror whose inbox holds ``rows`` ids applied evenly over SPAN up to NOW."""
    open_store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    step = SPAN / rows
    start = NOW - SPAN
    chunk = 100_000
    for first in range(0, rows, chunk):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events"
            " (id, provider, appointment_id, type, occurred_at, outcome, applied_at)"
            " VALUES (?, 'savvycal', ?, 'appointment.meeting.updated', 0, 'applied', ?)",
            (
                (f"evt_{(n * 2654435761) % 2**32:08x}{n:08d}", f"appt_{n % 50_000:012d}",
                 (start + step * n).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:23] + "Z")
                for n in range(first, min(first + chunk, rows))
            ),
        )
        conn.execute("COMMIT")
    conn.close()


def old_prune(path: Path) -> tuple[float, int]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -16384")  # as open_store sets it
    started = time.perf_counter()
    cutoff = (NOW - KEEP).strftime("%Y-%m-%dT%H:%M:%S")
    deleted = conn.execute("DELETE FROM events WHERE applied_at < ?", (cutoff,)).rowcount
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, deleted


def new_prune(path: Path) -> tuple[float, int]:
    store = open_store(path)
    started = time.perf_counter()
    deleted = store.prune_inbox(now=NOW, keep=KEEP)
    seconds = time.perf_counter() - started
    store.close()
    return seconds, deleted


def run(options: Options) -> StageResult:
    result = StageResult("prune")
    work = options.workdir / "prune"
    work.mkdir(parents=True, exist_ok=True)
    for rows in ([20_000] if options.quick else [1_000_000, 10_000_000]):
        source = work / f"inbox{rows}.db"
        built = time.perf_counter()
        build(source, rows)
        built = time.perf_counter() - built
        timings: dict[str, tuple[float, int]] = {}
        for name, prune in (("old", old_prune), ("new", new_prune)):
            copy = work / f"{name}{rows}.db"
            shutil.copyfile(source, copy)
            timings[name] = prune(copy)
            copy.unlink()
        source.unlink()
        (old_s, old_n), (new_s, new_n) = timings["old"], timings["new"]
        if old_n != new_n:
            raise RuntimeError(f"prunes disagree at {rows} rows: {old_n} vs {new_n}")
        figure = Figure(f"prune, {rows:,} inbox rows", "ms per prune (lower is better)",
                        new_s * 1000, old_s * 1000)
        figure.note = (f"both forget {new_n:,} ids; {old_s / new_s:.0f}x faster; "
                       f"inbox built in {built:.0f} s")
        result.figures.append(figure)
    result.commands += [
        "ours: Store.prune_inbox(now, keep=30 days) on a copy of the mirror",
        "baseline: DELETE FROM events WHERE applied_at < cutoff (release 0.1) on another copy",
    ]
    return result
