"""A real subscriber: a plain asyncio HTTP server on its own thread that verifies every
request with the official ``standardwebhooks`` package and misbehaves on cue.

``faults`` decides each request's fate by its webhook-id and how many times that id came
before: ``ok``, a status (with headers), ``slow`` (answers 2xx late), ``hang`` (never answers:
the sender times out) or ``reset`` (drops the connection unanswered). ``down``/``up`` stop and
restart the listener on the same port (connection refused meanwhile).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Fault:
    kind: str = "ok"  # ok | status | slow | hang | reset
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0


OK = Fault()
Decide = Callable[[str, int], Fault]  # (webhook-id, times seen before) -> fate


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    signatures: int
    acknowledged: bool = False


@dataclass
class Receiver:
    secrets: tuple[str, ...]
    decide: Decide = lambda _id, _n: OK
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    unverified: int = 0
    _seen: dict[str, int] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/meetsync"

    def start(self) -> Receiver:
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def _call(self, coro: Any) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def down(self) -> None:
        """Stop listening: connections are refused until ``up``."""

        async def close() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        self._call(close())

    def up(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in self._writers:
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)

    # --- what the tests look at ------------------------------------------------------------

    def acknowledged(self) -> list[Received]:
        """The deliveries answered 2xx, in the order they were answered (first time each)."""
        with self._lock:
            found, seen = [], set()
            for r in self.requests:
                if r.acknowledged and r.webhook_id not in seen:
                    seen.add(r.webhook_id)
                    found.append(r)
            return found

    def attempts(self, webhook_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.webhook_id == webhook_id]

    # --- the server ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the receiver stops
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        try:
            parsed = None
            for secret in self.secrets:  # each secret alone verifies (rotation)
                parsed = Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            with self._lock:
                self.unverified += 1
            await self._answer(writer, 401)
            return
        msg_id = headers["webhook-id"]
        assert parsed is not None and parsed["id"] == msg_id
        with self._lock:
            times = self._seen.get(msg_id, 0)
            self._seen[msg_id] = times + 1
            record = Received(msg_id, parsed, len(headers["webhook-signature"].split()))
            self.requests.append(record)
        fault = self.decide(msg_id, times)
        if fault.kind == "reset":
            transport = writer.transport
            transport.abort()
            return
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds or 3600)
            writer.close()
            return
        if fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
        status = fault.status if fault.kind == "status" else 200
        if 200 <= status < 300:
            with self._lock:
                record.acknowledged = True
        await self._answer(writer, status, fault.headers)

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int,
                      headers: tuple[tuple[str, str], ...] = ()) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n"
                     f"{extra}\r\nok".encode())
        try:
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass


def body_of(received: Received) -> dict[str, Any]:
    return received.body


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
