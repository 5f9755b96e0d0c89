"""Shared helpers for the reconciler tests: a simulated provider, a real SQLite mirror fed by the
simulator's webhooks, a client over the simulator's ASGI app, and a fault-injecting edge."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from meetsync.events import Event, iso_utc, received, to_micros
from meetsync.providers.http import ClientOptions
from meetsync.providers.savvycal import appointment_event
from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.envelope import parse_envelope
from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim
from meetsync.store import open_store
from meetsync.store.apply import CREDENTIAL_GRACE
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler, snapshot_of

START = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
UNLIMITED = 1_000_000
SKEW_TOLERANCE_US = 300 * 1_000_000

Fault = int | str | None  # an HTTP status to answer, "timeout", or None to serve normally


def events_of(deliveries: Iterable[Delivery]) -> list[Event]:
    """The events the receiver would queue for these webhook deliveries, each received when the
    provider sent it (``Delivery.created_at``)."""
    events: list[Event] = []
    for delivery in deliveries:
        parsed = parse_envelope(delivery.body)
        assert isinstance(parsed, Event)
        events.append(received(parsed, to_micros(delivery.created_at), SKEW_TOLERANCE_US))
    return events


def apply_webhooks(
    db_path: Path, deliveries: Iterable[Delivery], clock: Callable[[], datetime] | None = None
) -> None:
    """Apply deliveries to the mirror through the guarded path, as the worker would, at
    ``clock``'s time (the real one by default)."""
    store = open_store(db_path, clock=clock) if clock else open_store(db_path)
    try:
        _, failures = store.apply(events_of(deliveries))
        assert failures == []
    finally:
        store.close()


def truth(sim: SavvyCalSim) -> dict[str, dict[str, Any]]:
    """The provider's truth for every appointment, in the shape of ``Store.snapshots`` rows."""
    return {
        appointment_id: snapshot_of(appointment_event(
            obj, event_id="truth", type="truth", occurred_at=to_micros(sim.now)))
        for appointment_id, obj in sim.appointments.items()
    }


def in_window(sim: SavvyCalSim, snapshots: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rows whose appointment ends after the reconciler's cutoff (now - 24 h)."""
    cutoff = iso_utc(sim.now - CREDENTIAL_GRACE)
    return {k: v for k, v in snapshots.items() if v["end_at"] is None or v["end_at"] > cutoff}


def mirror_rows(db_path: Path, appointment_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    store = open_store(db_path, readonly=True)
    try:
        return store.snapshots(list(appointment_ids))
    finally:
        store.close()


def assert_mirror_matches(sim: SavvyCalSim, db_path: Path) -> None:
    """Every appointment in the window is, field by field, what the provider says."""
    expected = in_window(sim, truth(sim))
    held = mirror_rows(db_path, expected)
    for appointment_id, fields in expected.items():
        assert held.get(appointment_id) == fields, appointment_id


def meetings_table(db_path: Path) -> dict[str, dict[str, Any]]:
    """The raw ``meetings`` rows (credentials unmasked), by id."""
    conn = sqlite3.connect(db_path)
    try:
        cur = conn.execute("SELECT * FROM meetings")
        keys = [column[0] for column in cur.description]
        return {row[0]: dict(zip(keys, row, strict=True)) for row in cur.fetchall()}
    finally:
        conn.close()


def last_run(db_path: Path) -> dict[str, Any]:
    store = open_store(db_path, readonly=True)
    try:
        return store.runs(1)[0]
    finally:
        store.close()


Hook = Callable[[httpx.Request, int], Awaitable[None]]


@dataclass
class Edge(httpx.AsyncBaseTransport):
    """The provider at the edge: the simulator's ASGI app, with scripted faults and hooks.

    ``faults(request, n)`` names what request ``n`` (from 1) gets instead of an answer;
    ``after(request, n)`` runs once an answer is ready, before the client sees it (the provider
    changing while a response is in flight).
    """

    sim: SavvyCalSim
    faults: Callable[[httpx.Request, int], Fault] = lambda _request, _n: None
    after: Hook | None = None
    rate_limit_per_minute: int = UNLIMITED
    clock: Callable[[], float] | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    answered: list[int | str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._inner = httpx.ASGITransport(
            app=self.sim.asgi_app(rate_limit_per_minute=self.rate_limit_per_minute,
                                  clock=self.clock)
        )

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
            return httpx.Response(fault, headers=headers, json={"errors": [{"status": str(fault)}]})
        response = await self._inner.handle_async_request(request)
        await response.aread()
        self.answered.append(response.status_code)
        if self.after is not None:
            await self.after(request, n)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class Harness:
    """A simulated provider, a mirror on a real SQLite file, and one client between them.

    ``delays`` records the client's backoff sleeps; they take no time unless ``sleep`` (say a
    ``ManualClock.auto_sleep``) says otherwise.
    """

    def __init__(
        self, sim: SavvyCalSim, db_path: Path, *, budget: RequestBudget | None = None,
        max_attempts: int = 4, sleep: Callable[[float], Awaitable[None]] | None = None,
        **edge_options: Any,
    ) -> None:
        self.sim = sim
        self.db_path = db_path
        self.delays: list[float] = []
        self._then_sleep = sleep
        self.edge = Edge(sim, **edge_options)
        self.client = SavvyCalClient(
            "http://sim/v1", sim.token, budget=budget or RequestBudget(UNLIMITED),
            options=ClientOptions(transport=self.edge, sleep=self._sleep,
                                  max_attempts=max_attempts),
        )
        self.store = StoreThread(lambda: open_store(db_path, clock=self.now))

    def now(self) -> datetime:
        """The provider's clock: the mirror's "now" too."""
        return self.sim.now

    async def _sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._then_sleep is not None:
            await self._then_sleep(seconds)

    async def __aenter__(self) -> Harness:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()
        self.store.close()

    def reconciler(self, **options: Any) -> Reconciler:
        """A reconciler on this harness, stamping snapshots with the provider's clock."""
        options.setdefault("clock", lambda: self.sim.now)
        return Reconciler(self.client, self.store, **options)

    def apply(self, deliveries: Iterable[Delivery]) -> None:
        apply_webhooks(self.db_path, deliveries, self.now)

    def mirror(self, appointment_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return mirror_rows(self.db_path, appointment_ids)

    def meetings(self) -> dict[str, dict[str, Any]]:
        return meetings_table(self.db_path)

    def last_run(self) -> dict[str, Any]:
        return last_run(self.db_path)

    def assert_mirror_matches(self) -> None:
        assert_mirror_matches(self.sim, self.db_path)


MakeHarness = Callable[..., Harness]


@pytest.fixture
def sim() -> SavvyCalSim:
    return SavvyCalSim(5, start=START)


@pytest.fixture
async def harness(sim: SavvyCalSim, tmp_path: Path) -> AsyncIterator[MakeHarness]:
    """``harness(budget=..., max_attempts=..., **edge_options)`` over ``sim``, a fresh mirror."""
    made: list[Harness] = []

    def make(**options: Any) -> Harness:
        made.append(Harness(sim, tmp_path / f"mirror{len(made)}.db", **options))
        return made[-1]

    yield make
    for built in made:
        await built.aclose()


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This folder's helpers for tests that cannot take function-scoped fixtures (hypothesis)."""
    return SimpleNamespace(
        START=START, Harness=Harness, truth=truth, apply_webhooks=apply_webhooks,
        assert_mirror_matches=assert_mirror_matches, last_run=last_run,
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``meetsync.cli.main`` configures logging for the process: put it back afterwards."""
    import logging

    import structlog

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
