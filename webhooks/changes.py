"""The change feed downstream apps follow: ``GET /v1/changes`` (paged) and
``GET /v1/changes/stream`` (Server-Sent Events), both behind the read token.

Each change is one row of the mirror's change log (``Store.changes_since``): ``seq`` orders
them and is the cursor. A page answers ``{"changes": [...], "next": SEQ}``: ask again with
``since=next``. The stream sends the backlog after ``Last-Event-ID`` (or ``?since=``), then each
change as the worker commits it (the mirror is polled read-only), every event's ``id:`` its
``seq``, so a client that reconnects with ``Last-Event-ID`` gets exactly what it missed.
Comment lines keep an idle connection alive. A stream ends when its client goes away (the
response is cancelled) or when the feed stops (``ChangeFeed.stop``: the app's shutdown).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from meetsync.settings import Settings
from meetsync.webhooks.auth import bearer_guard, unauthorized
from meetsync.webhooks.params import bounded_int
from meetsync.webhooks.read_api import ReadOnlyMirror

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_SEQ = 2**63 - 1  # SQLite's INTEGER
STREAM_PAGE = 500


class _BadCursor(ValueError):
    """A ``since``, ``limit`` or ``Last-Event-ID`` that is not a number in range."""


def _number(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    value = bounded_int(raw, low, high)
    if value is None:
        raise _BadCursor(f"{name} must be an integer from {low} to {high}")
    return value


class ChangeFeed:
    """The two routes over one read-only mirror; ``stop`` ends every open stream."""

    def __init__(
        self, settings: Settings, mirror: ReadOnlyMirror, *, poll_seconds: float = 0.5,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        self._mirror = mirror
        self._authorized = bearer_guard(settings)
        self._poll = poll_seconds
        self._heartbeat = heartbeat_seconds
        # A threading.Event: the server's signal handler (or a test's thread) may stop us.
        self._stopping = threading.Event()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/changes", self.page, methods=["GET"]),
            Route("/v1/changes/stream", self.stream, methods=["GET"]),
        ]

    def stop(self) -> None:
        """End every open stream (within one poll) and refuse new ones."""
        self._stopping.set()

    async def _since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] | None = await self._mirror.read(
            lambda store: store.changes_since(seq, limit))
        return rows or []  # None: no mirror yet, so no change either

    async def page(self, request: Request) -> Response:
        if not self._authorized(request):
            return unauthorized()
        try:
            since = _number(request.query_params.get("since"), "since", 0, 0, MAX_SEQ)
            limit = _number(request.query_params.get("limit"), "limit", DEFAULT_LIMIT, 1,
                            MAX_LIMIT)
        except _BadCursor as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        changes = await self._since(since, limit)
        return JSONResponse({"changes": changes,
                             "next": changes[-1]["seq"] if changes else since})

    async def stream(self, request: Request) -> Response:
        if not self._authorized(request):
            return unauthorized()
        try:
            resume = request.headers.get("last-event-id")
            since = (_number(resume.strip(), "Last-Event-ID", 0, 0, MAX_SEQ) if resume
                     else _number(request.query_params.get("since"), "since", 0, 0, MAX_SEQ))
        except _BadCursor as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if self._stopping.is_set():
            return JSONResponse({"error": "shutting down"}, status_code=503,
                                headers={"Retry-After": "5"})
        return StreamingResponse(
            self._events(since), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(self, seq: int) -> AsyncIterator[bytes]:
        # A client that disconnects cancels this generator (Starlette listens for it).
        yield b"retry: 1000\n\n"
        quiet_since = time.monotonic()
        while not self._stopping.is_set():
            changes = await self._since(seq, STREAM_PAGE)
            if changes:
                yield b"".join(
                    b"id: %d\nevent: change\ndata: %s\n\n" % (change["seq"], orjson.dumps(change))
                    for change in changes)
                seq = changes[-1]["seq"]
                quiet_since = time.monotonic()
                if len(changes) == STREAM_PAGE:
                    continue  # more backlog: no pause
            elif time.monotonic() - quiet_since >= self._heartbeat:
                yield b": heartbeat\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(self._poll)


__all__ = ["ChangeFeed"]
