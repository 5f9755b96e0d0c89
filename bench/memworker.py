"""One Applier in a process of its own, draining the event stream until stdin closes.

    python -m bench.memworker --redis redis://127.0.0.1:6390/0 --db mirror.db

The memory stage reads this process's resident set size while it feeds the stream.
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


async def run(redis_url: str, db_path: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = StoreThread(lambda: open_store(db_path))
    applier = Applier(client, store)
    await applier.ensure_group()
    task = asyncio.create_task(applier.run(block_ms=200))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    applier.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store.close()
    await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memworker")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    configure("INFO")
    asyncio.run(run(args.redis, args.db))


if __name__ == "__main__":
    main()
