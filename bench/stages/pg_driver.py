"""PostgreSQL driver: psycopg 3 against asyncpg, the same upserts into one private server.

Every variant upserts the same rows (one per event: the apply stage's raw row) into an emptied
table, 1,000 per transaction, in turn (each round starting one variant later) so that each
sees the same machine. The
baseline column is psycopg as ``store/postgres.py`` uses it: an autocommit connection, explicit
``BEGIN``/``COMMIT``, one statement per round trip with its ``RETURNING`` row fetched before
the next (the guarded apply needs each statement's result), prepared after 5 uses (psycopg's
default ``prepare_threshold``). Ratios above 1 are faster than that.

asyncpg is not a dependency of meetsync (``pip install -e '.[bench]'`` brings it); without it
only psycopg's variants run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from bench import pg
from bench.common import Figure, Options, StageResult
from bench.stages.apply import bench_events, row

BATCH = 1000
Rows = Sequence[tuple[object, ...]]

_RETURNING = pg.upsert_sql("%s", returning=True)
_PLAIN = pg.upsert_sql("%s", returning=False)
_A_RETURNING = pg.upsert_sql("$", returning=True)
_A_PLAIN = pg.upsert_sql("$", returning=False)


class Clock:
    """Wall and CPU seconds of the timed part only (connecting is not timed)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def psycopg_one_by_one(url: str, rows: Rows, clock: Clock, prepare_threshold: int | None = 5
                       ) -> None:
    with psycopg.connect(url, autocommit=True, prepare_threshold=prepare_threshold) as conn, \
            clock:
        for start in range(0, len(rows), BATCH):
            conn.execute("BEGIN")
            for one in rows[start : start + BATCH]:
                conn.execute(_RETURNING, one).fetchone()
            conn.execute("COMMIT")


def psycopg_executemany(url: str, rows: Rows, clock: Clock) -> None:
    """``executemany``: psycopg sends the batch in pipeline mode (no result read in between)."""
    with psycopg.connect(url, autocommit=True) as conn, clock:
        for start in range(0, len(rows), BATCH):
            conn.execute("BEGIN")
            with conn.cursor() as cur:
                cur.executemany(_PLAIN, rows[start : start + BATCH])
            conn.execute("COMMIT")


async def _asyncpg_connect(url: str) -> Any:
    import asyncpg  # optional: see the module docstring

    return await asyncpg.connect(url)


async def _asyncpg_one_by_one(url: str, rows: Rows, clock: Clock) -> None:
    conn = await _asyncpg_connect(url)
    try:
        with clock:
            for start in range(0, len(rows), BATCH):
                async with conn.transaction():
                    for one in rows[start : start + BATCH]:
                        await conn.fetchrow(_A_RETURNING, *one)
    finally:
        await conn.close()


async def _asyncpg_executemany(url: str, rows: Rows, clock: Clock) -> None:
    conn = await _asyncpg_connect(url)
    try:
        with clock:
            for start in range(0, len(rows), BATCH):
                async with conn.transaction():
                    await conn.executemany(_A_PLAIN, rows[start : start + BATCH])
    finally:
        await conn.close()


def asyncpg_one_by_one(url: str, rows: Rows, clock: Clock) -> None:
    asyncio.run(_asyncpg_one_by_one(url, rows, clock))


def asyncpg_executemany(url: str, rows: Rows, clock: Clock) -> None:
    asyncio.run(_asyncpg_executemany(url, rows, clock))


def asyncpg_from_thread(url: str, rows: Rows, clock: Clock) -> None:
    """asyncpg called the way a synchronous store thread would have to: each statement a
    ``run_until_complete`` on the thread's own event loop."""
    loop = asyncio.new_event_loop()
    try:
        conn = loop.run_until_complete(_asyncpg_connect(url))
        with clock:
            for start in range(0, len(rows), BATCH):
                loop.run_until_complete(conn.execute("BEGIN"))
                for one in rows[start : start + BATCH]:
                    loop.run_until_complete(conn.fetchrow(_A_RETURNING, *one))
                loop.run_until_complete(conn.execute("COMMIT"))
        loop.run_until_complete(conn.close())
    finally:
        loop.close()


Variant = tuple[str, Callable[[str, Rows, Clock], None], bool]  # name, run, over the Unix socket

BASELINE = "psycopg, one statement per round trip (as store/postgres.py)"


def variants(with_asyncpg: bool) -> list[Variant]:
    found: list[Variant] = [
        (BASELINE, psycopg_one_by_one, False),
        ("psycopg, one per round trip, never prepared (prepare_threshold=None)",
         lambda url, rows, clock: psycopg_one_by_one(url, rows, clock, None), False),
        ("psycopg, one per round trip, prepared at once (prepare_threshold=0)",
         lambda url, rows, clock: psycopg_one_by_one(url, rows, clock, 0), False),
        ("psycopg, one per round trip, over the Unix socket", psycopg_one_by_one, True),
        ("psycopg, executemany (pipeline mode)", psycopg_executemany, False),
    ]
    if with_asyncpg:
        found += [
            ("asyncpg, one statement per round trip (await each)", asyncpg_one_by_one, False),
            ("asyncpg, one per round trip from a sync thread (run_until_complete each)",
             asyncpg_from_thread, False),
            ("asyncpg, executemany (pipelined)", asyncpg_executemany, False),
        ]
    return found


def run(options: Options) -> StageResult:
    result = StageResult("pg driver")
    with_asyncpg = importlib.util.find_spec("asyncpg") is not None
    rows = [row(event) for event in bench_events(options)][: options.count(20_000, 400)]
    rounds = options.count(3, 1)
    chosen = variants(with_asyncpg)
    clocks = {name: Clock() for name, _, _ in chosen}
    with pg.private_server(options.workdir / "pg-driver") as server:
        tcp = server.create_database("drivers")
        unix = pg.socket_url(server, "drivers")
        with psycopg.connect(tcp, autocommit=True) as conn:
            conn.execute(pg.RAW_TABLE)
            for number in range(rounds):
                # Each round starts one variant later: none always runs first, or last.
                for name, fn, over_socket in chosen[number:] + chosen[:number]:
                    conn.execute("TRUNCATE snapshots")
                    conn.execute("CHECKPOINT")  # no variant pays for another's dirty pages
                    fn(unix if over_socket else tcp, rows, clocks[name])
    done = len(rows) * rounds
    baseline = done / clocks[BASELINE].wall
    for name, _, _ in chosen:
        if name == BASELINE:
            continue
        figure = Figure(f"pg driver: {name}", "rows/s", done / clocks[name].wall, baseline)
        figure.note = f"client CPU {clocks[name].cpu / done * 1e6:.0f} µs/row"
        result.figures.append(figure)
    result.notes.append(
        f"baseline: {BASELINE}: {baseline:,.0f} rows/s, client CPU "
        f"{clocks[BASELINE].cpu / done * 1e6:.0f} µs/row; {len(rows):,} rows x {rounds} round(s), "
        f"{BATCH} per transaction, variants in turn, each round starting one later; TCP on "
        "127.0.0.1 unless said")
    if not with_asyncpg:
        result.notes.append("asyncpg is not installed (pip install -e '.[bench]'): its rows "
                            "are missing")
    result.commands += [
        "server: meetsync.dev.pg_server.PostgresServer (private, fsync=off), one database",
        "statement (one by one): " + _RETURNING,
        "statement (executemany): " + _PLAIN,
    ]
    return result
