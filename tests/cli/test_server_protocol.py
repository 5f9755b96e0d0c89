"""``meetsync serve``'s HTTP protocol (``meetsync/cli/_server.py``): uvicorn's httptools protocol
with a response's head held for its body. The bytes a client receives are those of the stock
protocol; a head whose body is slow to come, and a ``100 Continue``, still go out at once."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from meetsync.cli import uvicorn_kwargs
from meetsync.cli._server import HeadHoldingHttpTools, HeadHoldingTransport

head_seen = threading.Event()  # the slow route's client read the head


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """A few response shapes, by path."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/chunked":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
    elif path == "/slow":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"4")]})
        for _ in range(500):  # the body waits until the client has read the head
            if head_seen.is_set():
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"done"})
    else:
        reply = b'{"status":"queued","got":%d}' % len(body)
        await send({"type": "http.response.start", "status": 202,
                    "headers": [(b"content-length", str(len(reply)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": reply})


@contextmanager
def serving(**options: Any) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", server_header=False, date_header=False,
                            **{**uvicorn_kwargs(), **options})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` (which asks to close), read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


REQUESTS = [
    b"POST /webhooks/x HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    b"GET /empty HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    b"GET /chunked HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    b"HEAD /webhooks/x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    # two requests on one connection, pipelined
    b"POST /a HTTP/1.1\r\nhost: t\r\ncontent-length: 1\r\n\r\nx"
    b"POST /b HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nconnection: close\r\n\r\nyz",
]


def test_serve_uses_the_head_holding_protocol() -> None:
    assert uvicorn_kwargs()["http"] is HeadHoldingHttpTools


@pytest.mark.parametrize("request_bytes", REQUESTS)
def test_clients_receive_the_bytes_the_stock_protocol_sends(request_bytes: bytes) -> None:
    with serving() as ours, serving(http="httptools") as stock:
        assert exchange(ours, request_bytes) == exchange(stock, request_bytes)


def test_a_head_whose_body_is_slow_goes_out_at_once() -> None:
    head_seen.clear()
    with serving() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /slow HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += conn.recv(65536)  # a held head would time out here (5 s)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n") and not received.endswith(b"done")
        head_seen.set()
        while chunk := conn.recv(65536):
            received += chunk
    assert received.endswith(b"\r\n\r\ndone")


def test_a_100_continue_is_not_held() -> None:
    with serving() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"POST /webhooks/x HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\n"
                     b"expect: 100-continue\r\nconnection: close\r\n\r\n")
        assert conn.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(b"abc")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert received.endswith(b'{"status":"queued","got":3}')


async def test_the_head_waits_for_its_body_or_the_end_of_the_iteration() -> None:
    """On a real connection: a head alone reaches the peer only once the loop has turned; a
    head then a body, in the same step, arrive together."""
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    held = HeadHoldingTransport(transport, loop)
    try:
        held.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
        with pytest.raises(BlockingIOError):
            peer.recv(4096)  # nothing sent yet
        held.write(b"{}")
        await asyncio.sleep(0.05)
        assert peer.recv(4096) == b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"

        held.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await asyncio.sleep(0.05)  # the iteration ends: the head goes alone
        assert peer.recv(4096) == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"

        held.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        held.close()  # closing sends what is held first
        await asyncio.sleep(0.05)
        assert peer.recv(4096) == b"HTTP/1.1 204 No Content\r\n\r\n"
    finally:
        transport.close()
        peer.close()
