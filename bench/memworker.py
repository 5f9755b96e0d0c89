"""One Applier in a process of its own, draining the event stream until stdin closes.

    python -m bench.memworker --redis redis://127.0.0.1:6390/0 --db mirror.db [--go]

It prints ``ready`` once its store is open; with ``--go`` it then waits for a line on stdin
before it starts, so that several of them start draining together. ``--db`` takes a SQLite path
or a ``postgresql://`` URL. The memory stage reads this process's resident set size while it
feeds the stream; the pg_apply stage runs several of them on one stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import redis.asyncio as aioredis

from meetsync.log import configure
from meetsync.store import open_store
from meetsync.worker.applier import Applier, StoreThread


async def run(redis_url: str, db_path: str, *, go: bool = False) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = StoreThread(lambda: open_store(db_path))
    applier = Applier(client, store)
    await applier.ensure_group()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    if go:
        await loop.run_in_executor(None, sys.stdin.readline)
    task = asyncio.create_task(applier.run(block_ms=200))
    await loop.run_in_executor(None, sys.stdin.read)
    applier.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store.close()
    await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memworker")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--go", action="store_true", help="start on a line from stdin")
    args = parser.parse_args(argv)
    configure("INFO")
    asyncio.run(run(args.redis, args.db, go=args.go))


if __name__ == "__main__":
    main()
