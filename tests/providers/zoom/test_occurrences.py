"""A recurring Zoom meeting's occurrences, end to end: the simulator's meeting fetched through
``ZoomClient.fetch`` (real HTTP) and applied, then the mirror's occurrences are Zoom's; a change
in Zoom (the series moved, an occurrence deleted) replaces them on the next fetch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from meetsync.events import Event
from meetsync.providers.http import RequestBudget
from meetsync.providers.zoom import ZoomClient
from meetsync.providers.zoom.envelope import parse_envelope
from meetsync.providers.zoom.mapping import PROVIDER
from meetsync.providers.zoom.simulator import ZoomSim
from meetsync.simulator import ManualClock, serve_in_background
from meetsync.store import Store, open_store

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@dataclass
class Stack:
    sim: ZoomSim
    api: ZoomClient
    store: Store
    fetches: int = 0

    async def fetch_and_apply(self, meeting_id: int) -> Event:
        self.fetches += 1
        event = await self.api.fetch(str(meeting_id), event_id=f"refetch:{self.fetches}",
                                     type="refetch", priority="refetch",
                                     clock=self.sim.wall_now)
        assert event is not None
        _, failures = self.store.apply([event])
        assert failures == []
        return event


@pytest.fixture
def served() -> Iterator[tuple[ZoomSim, str]]:
    clock = ManualClock()
    sim = ZoomSim(7, start=START, clock=clock)
    with serve_in_background(sim.asgi_app(per_second_limit=10_000)) as root:
        yield sim, root


@pytest.fixture
async def stack(served: tuple[ZoomSim, str], db_path: Path) -> AsyncIterator[Stack]:
    sim, root = served
    account = sim.account
    api = ZoomClient(account="default", account_id=account.account_id,
                     client_id=account.client_id, client_secret=account.client_secret,
                     budget=RequestBudget(10_000, window=1.0), api_url=f"{root}/v2",
                     oauth_url=f"{root}/oauth/token")
    try:
        with open_store(db_path) as store:
            yield Stack(sim, api, store)
    finally:
        await api.aclose()


def truth(sim: ZoomSim, meeting_id: int) -> list[dict[str, Any]]:
    """The simulator's occurrences as the mirror should hold them (by start, then id)."""
    held = []
    for o in sim.meetings[meeting_id]["occurrences"]:
        start = datetime.fromisoformat(o["start_time"].replace("Z", "+00:00"))
        end = start + timedelta(minutes=o["duration"])
        held.append({"id": o["occurrence_id"], "start_at": o["start_time"],
                     "end_at": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "status": o["status"]})
    return sorted(held, key=lambda o: (o["start_at"], o["id"]))


def recurring(sim: ZoomSim, **options: Any) -> int:
    delivery = sim.create(recurring=True, start_time=START + timedelta(days=2), **options)
    assert delivery.meeting_id is not None
    return delivery.meeting_id


async def test_a_fetched_recurring_meeting_stores_the_simulators_occurrences(
    stack: Stack,
) -> None:
    meeting_id = recurring(stack.sim, occurrences=4)
    await stack.fetch_and_apply(meeting_id)
    held = stack.store.occurrences(str(meeting_id), provider=PROVIDER)
    assert len(held) == 4 and held == truth(stack.sim, meeting_id)
    assert {o["status"] for o in held} == {"available"}
    # One appointment per series; it is the series' own meeting.
    appointment = stack.store.appointment(str(meeting_id), provider=PROVIDER)
    assert appointment is not None and appointment["meeting_id"] == str(meeting_id)


async def test_a_change_at_zoom_replaces_the_set_on_the_next_fetch(stack: Stack) -> None:
    sim = stack.sim
    meeting_id = recurring(sim, occurrences=3)
    await stack.fetch_and_apply(meeting_id)
    before = {o["id"] for o in stack.store.occurrences(str(meeting_id), provider=PROVIDER)}

    sim.update(meeting_id, start_time=START + timedelta(days=3))  # the series moves a day
    sim.meetings[meeting_id]["occurrences"][1]["status"] = "deleted"  # one occurrence goes
    await stack.fetch_and_apply(meeting_id)
    held = stack.store.occurrences(str(meeting_id), provider=PROVIDER)
    assert held == truth(sim, meeting_id)
    assert [o["status"] for o in held] == ["available", "deleted", "available"]
    assert before.isdisjoint(o["id"] for o in held)  # new starts, new occurrence ids
    entities = [c["entity"] for c in stack.store.changes_since(0)]
    assert entities.count("occurrence") == 3 + 3 + 3  # inserted, deleted, inserted


async def test_the_created_webhook_and_the_fetch_agree(stack: Stack) -> None:
    sim = stack.sim
    delivery = sim.create(recurring=True, start_time=START + timedelta(days=1), occurrences=5)
    assert delivery.meeting_id is not None
    hooked = parse_envelope(delivery.body, account="default")
    assert isinstance(hooked, Event)
    stack.store.apply([hooked])
    assert stack.store.occurrences(str(delivery.meeting_id), provider=PROVIDER) == truth(
        sim, delivery.meeting_id)
    seq = max(c["seq"] for c in stack.store.changes_since(0))
    await stack.fetch_and_apply(delivery.meeting_id)
    assert stack.store.occurrences(str(delivery.meeting_id), provider=PROVIDER) == truth(
        sim, delivery.meeting_id)
    assert [c for c in stack.store.changes_since(seq) if c["entity"] == "occurrence"] == []


async def test_a_plain_meeting_has_no_occurrences(stack: Stack) -> None:
    delivery = stack.sim.create(start_time=START + timedelta(days=1))
    assert delivery.meeting_id is not None
    event = await stack.fetch_and_apply(delivery.meeting_id)
    assert event.occurrences is None
    assert stack.store.occurrences(str(delivery.meeting_id), provider=PROVIDER) == []
