"""uvicorn's httptools protocol, with each response's head and body in one system call.

uvicorn writes a response's status line and headers (``http.response.start``) to the transport
at once, and its body (``http.response.body``) in a second write; uvloop (since 0.15) sends
each write at once, so a small response costs two ``send`` calls and reaches the client as two
TCP segments (on loopback each send also runs the receiver's side of TCP): for a webhook's 202,
one system call more in the server and about 7 µs more of the client's CPU (bench/notes.md:
ingest). Here the head is held until the next write on the connection, or the end of the
event loop's iteration, whichever comes first, so nothing waits longer than that iteration
and the bytes and their order are unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "  # how uvicorn's status lines start (a body that does too: held as well)


class HeadHoldingTransport:
    """A connection's transport that holds a response head for its body (see the module)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        # What uvicorn asks on every request, bound once (``__getattr__`` costs ~0.5 µs a call).
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.writelines((held, data))  # one writev
        elif data[:9] == _HEAD:
            self._held = bytes(data)
            self._loop.call_soon(self.release)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        self.release()
        self._transport.writelines(chunks)

    def release(self) -> None:
        """Send what is held, if anything."""
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def write_eof(self) -> None:
        self.release()
        self._transport.write_eof()

    def close(self) -> None:
        self.release()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadHoldingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``HeadHoldingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, HeadHoldingTransport(transport, self.loop)))
