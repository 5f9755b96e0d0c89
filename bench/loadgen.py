"""A paced HTTP load generator (a separate process): a steady rate, not as fast as possible.

    python -m bench.loadgen --port 8000 --rate 1000 --seconds 30 \
        --requests posts.txt --out sent.json

Request ``i`` is due at ``start + i / rate``; its latency counts from that due time, so a
server that falls behind is charged for the wait (no coordinated omission). Times are
``time.monotonic()``, which every process on the machine shares, so another process can
compare them with when it saw each event land. Writes ``[[index, due, answered, status], ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import orjson


def build_requests(path: Path, host: str) -> list[bytes]:
    """The raw HTTP/1.1 requests of a ``bench.workload.write_requests`` file."""
    built = []
    for line in path.read_bytes().splitlines():
        method, target, header_text, body = line.split(b"\t", 3)
        head = [method + b" " + target + b" HTTP/1.1", b"host: " + host.encode()]
        head += [pair for pair in header_text.split(b"|") if pair]
        head.append(b"content-length: " + str(len(body)).encode())
        built.append(b"\r\n".join(head) + b"\r\n\r\n" + body)
    return built


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run(port: int, requests: list[bytes], rate: float, seconds: float,
              connections: int) -> list[list[float]]:
    total = min(len(requests), int(rate * seconds))
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    results: list[list[float]] = []

    async def send(index: int, due: float) -> None:
        reader, writer = await pool.get()
        try:
            status = await asyncio.wait_for(_exchange(reader, writer, requests[index]), 30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            status = 0
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        results.append([index, due, time.monotonic(), status])
        pool.put_nowait((reader, writer))

    tasks = set()
    start = time.monotonic() + 0.1
    for index in range(total):
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    requests = build_requests(args.requests, f"127.0.0.1:{args.port}")
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    results = runner(run(args.port, requests, args.rate, args.seconds, args.connections))
    args.out.write_bytes(orjson.dumps(results))


if __name__ == "__main__":
    main()
