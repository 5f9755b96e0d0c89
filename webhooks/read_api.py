"""The read API: the mirror's meetings over HTTP, behind a bearer token.

A lookup never waits on a SQLite lock on the event loop (``ReadOnlyMirror``), so a busy mirror
can't stall webhook receipt.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetsync.metrics import host_url_read
from meetsync.providers import lane_bounds, providers
from meetsync.queue import DEFAULT_BOUND, request_refetch
from meetsync.settings import Settings
from meetsync.store import (
    DEFAULT_PROVIDER,
    Store,
    StoreBusy,
    StoreUnavailable,
    open_store,
    views,
)
from meetsync.store.mirror import BUSY_TIMEOUT_SECONDS, Clock
from meetsync.store.postgres import is_postgres
from meetsync.webhooks.auth import bearer_guard
from meetsync.webhooks.params import storable

log = structlog.get_logger(__name__)


class ReadOnlyMirror:
    """Read-only access to the mirror that never makes the event loop wait on a lock.

    A lookup first runs inline on a connection whose busy timeout is zero: in WAL mode a reader
    does not wait for writers, so it either answers at once (~10 µs for a primary-key lookup)
    or fails fast with "busy" (a checkpoint or recovery holds the file), and only then moves to
    a dedicated reader thread that may wait. Sending every lookup to a thread cost 4x the
    throughput (bench/notes.md, read stage).
    """

    def __init__(self, path: str, *, clock: Clock | None = None) -> None:
        self.path = path
        # PostgreSQL answers over the network: never inline on the event loop.
        self._postgres = is_postgres(path)
        self._clock = clock  # the stores' "now" (None: the wall clock); tests move it
        self._inline: Store | None = None
        self._patient: Store | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meetsync-read")
        # What it opened, closed by close() (the app's shutdown) or, for a mirror dropped
        # without one (an app that never ran its lifespan), when it is collected.
        self._opened: list[Store] = []
        self._closer = weakref.finalize(self, _close_all, self._opened)

    def _inline_store(self) -> Store | None:
        if self._inline is None and Path(self.path).exists():  # SQLite's only
            self._inline = self._open(0)
            self._opened.append(self._inline)
        return self._inline  # None: no worker has created the mirror yet, nothing is known

    async def read(self, fn: Callable[[Store], Any]) -> Any:
        if not self._postgres:
            try:
                store = self._inline or self._inline_store()
                return None if store is None else fn(store)
            except StoreUnavailable:
                raise
            except StoreBusy:
                pass  # locked: the patient reader below waits for it
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._wait, fn)

    def _wait(self, fn: Callable[[Store], Any]) -> Any:
        if self._patient is None:
            self._patient = self._open()
            self._opened.append(self._patient)
        return fn(self._patient)

    def _open(self, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> Store:
        if self._clock is None:
            return open_store(self.path, readonly=True, busy_timeout=busy_timeout)
        return open_store(self.path, readonly=True, busy_timeout=busy_timeout, clock=self._clock)

    def close(self) -> None:
        """Stop the reader thread and close both connections (the app's shutdown)."""
        self._executor.shutdown(wait=True)
        self._closer()


def _close_all(stores: list[Store]) -> None:
    for store in stores:
        store.close()
    stores.clear()


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def read_routes(
    settings: Settings, mirror: ReadOnlyMirror, redis: Redis | None = None
) -> list[Route]:
    """``GET /v1/{provider}/appointments/{id}/meeting``, ``GET /v1/{provider}/meetings/{id}``
    and ``GET /v1/{provider}/appointments/{id}`` (the appointment, its ``participants``, its
    ``occurrences`` and its current ``meeting``), and the unqualified
    ``/v1/appointments/{id}/meeting`` and ``/v1/meetings/{id}`` of the provider every mirror
    served first (``LEGACY_PROVIDER``), read from ``mirror`` (the caller closes it). An unknown
    provider is simply not found.

    A provider whose ``host_url`` a fetch renews (``Provider.refreshable``) serves none once it
    died, with ``host_url_refresh_pending``; ``?fresh=true`` then asks the worker for a refetch
    (through ``redis``, on the account's budget) and waits up to ``refresh_wait_seconds``.

    A meeting hosted on another provider that the mirror also holds (``Store.linked_meeting``)
    says so in ``linked``; without a ``host_url`` of its own it serves the linked one while that
    lives (``host_url_source`` names whose it is), and ``?fresh=true`` refetches the linked one.
    """
    refreshable = frozenset(name for name, p in providers().items() if p.refreshable)
    wait = settings.refresh_wait_seconds
    bounds = lane_bounds(settings)

    authorized = bearer_guard(settings)

    def guarded(
        lookup: Lookup, param: str, meeting_of: MeetingOf = lambda found: found
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return _error(
                    401, "missing or invalid bearer token", **{"WWW-Authenticate": "Bearer"}
                )
            fresh = request.query_params.get("fresh", "false")
            if fresh not in _FRESH:
                return _error(400, "fresh must be true or false (or 1/0, yes/no)")
            provider = request.path_params.get("provider", DEFAULT_PROVIDER)
            key = request.path_params[param]
            if not (storable(provider) and storable(key)):
                return _error(404, "not found")
            renews = provider in refreshable

            async def read() -> dict[str, Any] | None:
                found: dict[str, Any] | None = await mirror.read(
                    lambda store: lookup(store, provider, key, renews))
                return found

            found = await read()
            if found is None:
                return _error(404, "not found")
            meeting = meeting_of(found)
            if meeting and meeting["host_url_refresh_pending"] and _FRESH[fresh]:
                found = await _refreshed(meeting, read, meeting_of) or found
            served = meeting_of(found)
            if served is not None:
                host_url_read(provider, served)
            return JSONResponse(found)

        return endpoint

    async def _refreshed(
        meeting: dict[str, Any], read: Callable[[], Awaitable[dict[str, Any] | None]],
        meeting_of: MeetingOf,
    ) -> dict[str, Any] | None:
        """Queue a refetch of the appointment whose host_url the meeting would serve (the
        linked meeting's, when that one is pending) and wait (bounded) for a live host_url."""
        linked = meeting["linked"]
        if linked is not None and linked["host_url_refresh_pending"]:
            provider = linked["provider"]
            held = await mirror.read(lambda store: store.meeting(
                linked["meeting_id"], provider=provider))
            if held is None:
                return None
            appointment_id = held["appointment_id"]
        else:
            provider, appointment_id = meeting["provider"], meeting["appointment_id"]
        appointment = await mirror.read(lambda store: store.appointment(
            appointment_id, provider=provider))
        if redis is None or appointment is None:
            return None
        try:
            await request_refetch(redis, provider, appointment["account"], appointment_id,
                                  bound=bounds.get((provider, appointment["account"]),
                                                   DEFAULT_BOUND))
        except (RedisError, OSError) as exc:
            log.warning("refresh_unavailable", provider=provider, error_type=type(exc).__name__)
            return None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            again = await read()
            now_serving = None if again is None else meeting_of(again)
            if now_serving is None or not now_serving["host_url_refresh_pending"]:
                return again
        return None

    current = guarded(
        lambda store, provider, key, _renews: views.current_meeting_view(
            store, provider, key, refreshable),
        "appointment_id",
    )
    meeting = guarded(
        lambda store, provider, key, _renews: views.meeting_view(
            store, provider, key, refreshable),
        "meeting_id",
    )
    appointment = guarded(
        lambda store, provider, key, _renews: views.appointment_view(
            store, provider, key, refreshable),
        "appointment_id", lambda found: found["meeting"])
    # The unqualified routes first: /v1/{provider}/meetings/{id} must not shadow
    # /v1/appointments/{id}/meeting (an appointment named "meetings"), nor
    # /v1/{provider}/appointments/{id} an appointment named "appointments".
    return [
        Route("/v1/appointments/{appointment_id}/meeting", current),
        Route("/v1/meetings/{meeting_id}", meeting),
        Route("/v1/{provider}/appointments/{appointment_id}/meeting", current),
        Route("/v1/{provider}/appointments/{appointment_id}", appointment),
        Route("/v1/{provider}/meetings/{meeting_id}", meeting),
    ]


Lookup = Callable[[Store, str, str, bool], "dict[str, Any] | None"]
MeetingOf = Callable[[dict[str, Any]], "dict[str, Any] | None"]
"""Where a response holds the meeting view whose host_url ``?fresh=true`` may renew."""


_FRESH = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
