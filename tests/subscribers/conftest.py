"""Subscribers' fixtures: a verifying receiver, a mirror with changes, deliveries running."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from meetsync.events import Event, Meeting, Participant
from meetsync.settings import Settings, Subscriber
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.subscribers import Deliveries
from tests.subscribers.receiver import Receiver

SECRET = "whsec_c3Vic2NyaWJlci1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg=="
NEXT_SECRET = "whsec_bmV4dC1zdWJzY3JpYmVyLXNlY3JldC0wMTIzNDU2Nzg5YWI="
PROVIDER = "savvycal"


def event(n: int, appointment: int, *, status: str = "scheduled",
          participants: int | None = None) -> Event:
    """The ``n``-th event (its order), of appointment ``appointment``: each one a change."""
    mid = f"amtg_{appointment}_{n}"
    return Event(
        id=f"evt_{n}", provider=PROVIDER, type="appointment.meeting.updated", occurred_at=n,
        appointment_id=f"appt_{appointment}", appointment_status=status,
        start_at="2098-12-31T23:00:00Z", end_at="2099-01-01T00:00:00Z",
        meeting=Meeting(id=mid, status="created", join_url=f"https://j/{mid}",
                        host_url=f"https://h/{mid}?zak=secret", password="pw-secret"),
        participants=None if participants is None else tuple(
            Participant(id=f"p{i}", role="guest", display_name=f"Guest {i}")
            for i in range(participants)),
    )


def write(db: Path | str, *events: Event) -> None:
    with open_store(db) as store:
        _, failures = store.apply(list(events))
        assert not failures


def changes(db: Path | str) -> list[dict[str, Any]]:
    with open_store(db, readonly=True) as store:
        return store.changes_since(0, 100_000)


def settings_for(db: Path | str, *subscribers: Subscriber, **extra: Any) -> Settings:
    values: dict[str, Any] = {"subscriber_backoff_ms": 20, "subscriber_backoff_max_seconds": 1,
                              "subscriber_timeout_seconds": 1, "subscriber_lease_seconds": 2}
    values.update(extra)
    return Settings(db_path=str(db), subscribers=subscribers, **values)


async def eventually(check: Callable[[], bool | Awaitable[bool]], patience: float = 20,
                     step: float = 0.05) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        found = check()
        if not isinstance(found, bool):
            found = await found
        if found:
            return
        await asyncio.sleep(step)
    raise AssertionError(f"not reached within {patience} s")


def arrival_seqs(receiver: Receiver) -> list[int]:
    return [r.body["seq"] for r in list(receiver.requests)]


def assert_in_order(receiver: Receiver) -> None:
    """One change in flight per subscriber: the seqs arrive non-decreasing (a retry repeats
    one; a later one never comes before an earlier one is acknowledged), so each
    appointment's changes arrive in order."""
    seqs = arrival_seqs(receiver)
    assert seqs == sorted(seqs), seqs
    for r in receiver.requests:
        assert r.webhook_id == r.body["id"]


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*secrets: str, **kwargs: Any) -> Receiver:
        receiver = Receiver(secrets or (SECRET,), **kwargs).start()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        with contextlib.suppress(Exception):
            receiver.stop()


@pytest.fixture
async def deliver(redis: Redis) -> AsyncIterator[Callable[[Settings], Deliveries]]:
    """Start deliveries as a worker does (each on a store connection of its own)."""
    started: list[tuple[Deliveries, StoreThread]] = []

    def start(settings: Settings) -> Deliveries:
        store = StoreThread(lambda: open_store(settings.db_path))
        deliveries = Deliveries(settings, redis, store)
        started.append((deliveries, store))
        return deliveries

    yield start
    for deliveries, store in started:
        await deliveries.stop()
        store.close()
