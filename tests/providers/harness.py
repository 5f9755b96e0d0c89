"""What the Avon and Consularia reconcile tests share: a provider simulator served over real
HTTP behind a fault-scripting edge, a real SQLite mirror, a reconciler between them.

``Edge`` sits in the client's transport: every request goes over real HTTP to the served
simulator unless ``faults(request, n)`` names what it gets instead (a status, ``"timeout"``);
``after(request, n)`` runs once an answer is in, before the client sees it (the provider
changing while a response is in flight, or between pages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from meetsync.events import Event, iso_utc
from meetsync.providers import ProviderApi
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler, drift

UNLIMITED = 1_000_000
HORIZON = timedelta(hours=24)

Fault = int | str | None  # an HTTP status to answer, "timeout", or None to serve normally
Hook = Callable[[httpx.Request, int], Awaitable[None]]


@dataclass
class Edge(httpx.AsyncBaseTransport):
    faults: Callable[[httpx.Request, int], Fault] = lambda _request, _n: None
    after: Hook | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    answered: list[int | str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        n = len(self.requests)
        fault = self.faults(request, n)
        if fault == "timeout":
            self.answered.append("timeout")
            raise httpx.ReadTimeout("simulated timeout", request=request)
        if isinstance(fault, int):
            self.answered.append(fault)
            headers = {"retry-after": "2"} if fault == 429 else {}
            return httpx.Response(fault, headers=headers, json={"error": str(fault)})
        response = await self._inner.handle_async_request(request)
        await response.aread()
        self.answered.append(response.status_code)
        if self.after is not None:
            await self.after(request, n)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def answers_to(self, path_end: str) -> list[int | str]:
        """What the requests whose path ends with ``path_end`` got, in order."""
        return [answer for request, answer in zip(self.requests, self.answered, strict=True)
                if request.url.path.endswith(path_end)]


class World:
    """One provider's simulator and API client, a mirror on a real SQLite file, and the clock
    they share (the simulator's ``now``). Subclasses build the client and the truth."""

    provider: str

    def __init__(self, db_path: Path, clock: Callable[[], datetime]) -> None:
        self.db_path = db_path
        self.now = clock
        self.delays: list[float] = []
        self.store = StoreThread(lambda: open_store(db_path, clock=self.now))
        self.client: ProviderApi

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.store.close()

    async def __aenter__(self) -> World:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def reconciler(self, **options: Any) -> Reconciler:
        options.setdefault("clock", self.now)
        options.setdefault("horizon", HORIZON)
        return Reconciler(self.client, self.store, **options)

    def apply(self, events: Iterable[Event]) -> None:
        """Write events through the guarded path, as the worker does."""
        store = open_store(self.db_path, clock=self.now)
        try:
            _, failures = store.apply(list(events))
            assert failures == []
        finally:
            store.close()

    def mirror(self, appointment_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        store = open_store(self.db_path, readonly=True)
        try:
            return store.snapshots(list(appointment_ids), provider=self.provider)
        finally:
            store.close()

    def last_run(self) -> dict[str, Any]:
        store = open_store(self.db_path, readonly=True)
        try:
            return store.runs(1)[0]
        finally:
            store.close()

    def truth(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def in_window(self) -> dict[str, dict[str, Any]]:
        cutoff = iso_utc(self.now() - HORIZON)
        return {k: v for k, v in self.truth().items()
                if v["end_at"] is None or v["end_at"] > cutoff}

    def mismatches(self) -> dict[str, list[str]]:
        """Appointments in the window that differ from the truth, with their fields."""
        expected = self.in_window()
        held = self.mirror(expected)
        found = {k: drift(v, held.get(k)) for k, v in expected.items()}
        return {k: fields for k, fields in found.items() if fields}

    def assert_mirror_matches(self) -> None:
        assert self.mismatches() == {}

    def assert_gone(self, appointment_ids: Iterable[str]) -> None:
        """Deleted at the provider: the mirror says ``deleted``, with no current meeting."""
        for appointment_id, row in self.mirror(appointment_ids).items():
            assert (row["status"], row["meeting_id"]) == ("deleted", None), appointment_id


__all__ = ["HORIZON", "UNLIMITED", "Edge", "Fault", "World"]
