"""The read API: the mirror's meetings over HTTP, behind a bearer token.

SQLite reads run on worker threads (one read-only connection per thread), never on the event
loop, so a slow disk can't stall webhook receipt.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetsync.settings import Settings
from store import Store, open_store


class ReadOnlyMirror:
    """Thread-local read-only connections to the mirror file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _store(self) -> Store | None:
        store: Store | None = getattr(self._local, "store", None)
        if store is None and Path(self.path).exists():
            store = self._local.store = open_store(self.path, readonly=True)
        return store

    async def read(self, fn: Callable[[Store], Any]) -> Any:
        def call() -> Any:
            store = self._store()
            return None if store is None else fn(store)

        return await anyio.to_thread.run_sync(call)


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def read_routes(settings: Settings) -> list[Route]:
    """``GET /v1/appointments/{id}/meeting`` and ``GET /v1/meetings/{id}``."""
    token = (settings.read_token or "").encode()
    mirror = ReadOnlyMirror(settings.db_path)

    def authorized(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # A missing token configuration answers nothing: compare_digest never matches b"".
        return (
            bool(token)
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), token)
        )

    def guarded(
        lookup: Callable[[Store, str], dict[str, Any] | None], param: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return _error(
                    401, "missing or invalid bearer token", **{"WWW-Authenticate": "Bearer"}
                )
            key = request.path_params[param]
            found = await mirror.read(lambda store: lookup(store, key))
            if found is None:
                return _error(404, "not found")
            return JSONResponse(found)

        return endpoint

    return [
        Route(
            "/v1/appointments/{appointment_id}/meeting",
            guarded(lambda store, key: store.current_meeting(key), "appointment_id"),
        ),
        Route(
            "/v1/meetings/{meeting_id}",
            guarded(lambda store, key: store.meeting(key), "meeting_id"),
        ),
    ]
