"""Reading what a client sends (body, query parameters, headers, cookies) without ever a 500.

A body is read through ``bounded_body``: refused (``TooLarge``) as soon as it is known to
exceed its route's limit, never held whole first.

Every number a route takes from a request goes through ``bounded_int``: the caller answers
400 (or 401 for a credential) when it says None; every id it looks up, through ``storable``.
``int()`` alone is not enough: it raises ``ValueError`` past 4,300 digits (CPython's guard
against quadratic parsing, https://docs.python.org/3/library/stdtypes.html#int-max-str-digits),
and ``str.isdigit`` is true of characters ``int`` refuses, such as ``²`` (a raw 0xB2 byte in a
header or cookie, which HTTP decodes as Latin-1).
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive


class TooLarge(Exception):
    """The body crossed its limit."""


def bounded_int(raw: str, low: int, high: int) -> int | None:
    """``raw`` as a non-negative integer in ``low..high``; None for anything else (not ASCII
    digits, or more significant digits than ``high`` has, decided before parsing)."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(high)):
        return None
    value = int(digits)
    return value if low <= value <= high else None


def storable(text: str) -> bool:
    """Whether the mirror could hold ``text`` at all: PostgreSQL's text refuses NUL (an error,
    not a miss), and no id we store has one, so a lookup of such an id is simply not found."""
    return "\x00" not in text


async def bounded_body(request: Request, limit: int) -> bytes:
    """The body, refusing (``TooLarge``) as soon as it is known to exceed ``limit`` bytes: by
    its declared length, or while it streams."""
    return await bounded_receive(request.headers.get("content-length"), request.receive, limit)


async def bounded_receive(declared: str | None, receive: Receive, limit: int) -> bytes:
    """``bounded_body`` straight from ASGI's ``receive`` (as Starlette's ``Request.stream``
    reads it: ``ClientDisconnect`` when the client leaves first), given the declared
    ``Content-Length``."""
    if declared is not None and declared.isascii() and declared.isdigit() and bounded_int(
            declared, 0, limit) is None:  # digits past the limit, however many
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        if message["type"] != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


__all__ = ["TooLarge", "bounded_body", "bounded_int", "bounded_receive", "storable"]
