"""In-process probes of ``Store.apply`` on PostgreSQL, behind the notes' figures (not a stage).

    python -m bench.pg_probe commit  [--events 10000]  # COMMIT per batch
    python -m bench.pg_probe prepare [--events 20000]  # psycopg prepare_threshold 5 against 0
    python -m bench.pg_probe socket  [--events 20000]  # TCP on 127.0.0.1 against the Unix socket

Each case applies the apply stage's events, 1,000 per ``Store.apply``, into a new database of a
private server, twice, alternating.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import count
from pathlib import Path
from typing import Any

from bench import pg
from bench.common import Options
from bench.stages.apply import BATCH, bench_events
from meetsync.dev.pg_server import PostgresServer
from meetsync.events import Event
from meetsync.store import Store, open_store

_names = count()


def _apply(store: Store, events: Sequence[Event]) -> tuple[float, float]:
    """(events/s, client CPU µs per event)."""
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(events), BATCH):
        store.apply(events[start : start + BATCH])
    seconds = time.perf_counter() - started
    return len(events) / seconds, (time.process_time() - cpu) / len(events) * 1e6


def _database(server: PostgresServer) -> str:
    return server.create_database(f"probe_{next(_names)}")


def commit(server: PostgresServer, events: Sequence[Event]) -> None:
    for case in ("first", "second"):
        store = open_store(_database(server))
        commits: list[float] = []
        execute = store.conn.execute

        def timed(sql: str, params: Any = (), _execute: Callable[..., Any] = execute,
                  commits: list[float] = commits) -> Any:
            started = time.perf_counter()
            try:
                return _execute(sql, params)
            finally:
                if sql == "COMMIT":
                    commits.append(time.perf_counter() - started)

        store.conn.execute = timed
        rate, _ = _apply(store, events)
        store.close()
        print(f"{case}: {rate:,.0f} events/s; COMMIT {sum(commits):.1f} s in all, per batch (ms): "
              + " ".join(f"{c * 1000:.0f}" for c in commits))


def compare(server: PostgresServer, events: Sequence[Event],
            cases: dict[str, Callable[[str], Store]]) -> None:
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(2):
        for name, opener in cases.items():
            store = opener(_database(server))
            found[name].append(_apply(store, events))
            store.close()
    for name, rounds in found.items():
        print(f"{name}: events/s " + " / ".join(f"{r:,.0f}" for r, _ in rounds)
              + "; client CPU µs/event " + " / ".join(f"{c:.0f}" for _, c in rounds))


def _threshold(url: str, threshold: int) -> Store:
    store = open_store(url)
    store.conn._live().prepare_threshold = threshold
    return store


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_probe")
    parser.add_argument("probe", choices=("commit", "prepare", "socket"))
    parser.add_argument("--events", type=int)
    args = parser.parse_args(argv)
    wanted = args.events or (10_000 if args.probe == "commit" else 20_000)
    with tempfile.TemporaryDirectory(prefix="meetsync-probe-") as temp, \
            pg.private_server(Path(temp) / "postgres") as server:
        events = bench_events(Options(quick=False, workdir=Path(temp)))[:wanted]
        if args.probe == "commit":
            commit(server, events)
        elif args.probe == "prepare":
            compare(server, events, {
                "prepare_threshold=5 (default)": lambda url: _threshold(url, 5),
                "prepare_threshold=0": lambda url: _threshold(url, 0),
            })
        else:
            def over_socket(url: str) -> Store:
                return open_store(pg.socket_url(server, url.rsplit("/", 1)[1]))

            compare(server, events, {"TCP": open_store, "Unix socket": over_socket})


if __name__ == "__main__":
    main()
