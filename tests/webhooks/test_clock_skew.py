"""A provider clock can't pin the mirror: an event dated beyond receipt + tolerance is ordered
at its receipt (logged, counted); skew within the tolerance keeps the provider's order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from meetsync.events import MEETING_STATUSES, UNDATED, Event, Meeting, received
from meetsync.queue import STATS
from meetsync.settings import Settings
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, StoreThread
from tests.providers.savvycal.samples import Samples

TOKEN = "clock-read-token"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def zoned(moment: datetime) -> dict[str, Any]:
    return {"object": "zoned_date_time", "utc": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "unix_ts": int(moment.timestamp()), "time_zone": "UTC"}


class Stack:
    """Signed deliveries in, the applier, then the read API: what a user sees."""

    def __init__(self, samples: Samples, settings: Settings, redis: aioredis.Redis,
                 db_path: Path) -> None:
        self.samples, self.redis, self.db_path = samples, redis, db_path
        self.app = create_app(replace(settings, read_token=TOKEN), redis=redis)
        self.start = datetime.now(UTC) + timedelta(days=2)

    async def deliver(self, event_id: str, created_at: str, host_url: str) -> int:
        obj = self.samples.appointment(
            start_at=zoned(self.start), end_at=zoned(self.start + timedelta(minutes=30)),
            meeting=self.samples.meeting(host_url=host_url),
        )
        body = self.samples.body(event_id=event_id, created_at=created_at, obj=obj)
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/webhooks/savvycal", content=body,
                headers={**self.samples.native_headers(body), "content-type": "application/json"},
            )
        applier = Applier(self.redis, StoreThread(lambda: open_store(self.db_path)))
        await applier.drain()
        applier.store.close()
        return response.status_code

    async def served_host_url(self) -> str | None:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get(
                "/v1/appointments/appt_a1b2c3d4e5f6/meeting",
                headers={"authorization": f"Bearer {TOKEN}"},
            )
        assert response.status_code == 200
        host_url: str | None = response.json()["host_url"]
        return host_url


async def test_an_event_from_900_years_ahead_does_not_pin_the_meeting(
    samples: Samples, settings: Settings, redis: aioredis.Redis, db_path: Path
) -> None:
    stack = Stack(samples, settings, redis, db_path)
    with capture_logs() as logs:
        assert await stack.deliver("evt_future", "2926-03-01T14:00:00Z",
                                   "https://h/pinned?token=FUTURE-SECRET") == 202
    assert await stack.served_host_url() == "https://h/pinned?token=FUTURE-SECRET"
    # The real update, created after the bogus one was received, wins.
    now = datetime.now(UTC)
    assert await stack.deliver("evt_now", iso(now), "https://h/fresh?token=NOW-SECRET") == 202
    assert await stack.served_host_url() == "https://h/fresh?token=NOW-SECRET"

    assert int(await redis.hget(STATS, "clamped") or 0) == 1
    (ahead,) = [line for line in logs if line["event"] == "event_clock_ahead"]
    assert ahead["event_id"] == "evt_future" and ahead["claimed_at"].startswith("2926-03-01")
    assert "FUTURE-SECRET" not in repr(logs)
    with open_store(db_path) as store:
        claimed = store.conn.execute(
            "SELECT claimed_at FROM events WHERE id = 'evt_future'").fetchone()[0]
    assert claimed is not None and claimed > 30_000_000_000_000_000


async def test_skew_within_the_tolerance_keeps_the_providers_order(
    samples: Samples, settings: Settings, redis: aioredis.Redis, db_path: Path
) -> None:
    stack = Stack(samples, settings, redis, db_path)
    now = datetime.now(UTC)
    # A provider clock two minutes fast: its later event arrives first, the earlier one after.
    # Offsets and fractional seconds as ISO-8601 allows them.
    later = (now + timedelta(seconds=120, microseconds=654321)).astimezone(
        timezone(timedelta(hours=-5)))
    assert await stack.deliver("evt_later", iso(later), "https://h/later") == 202
    assert await stack.deliver("evt_earlier", iso(now + timedelta(seconds=60)),
                               "https://h/earlier") == 202
    assert await stack.served_host_url() == "https://h/later"
    assert await redis.hget(STATS, "clamped") is None


async def test_an_event_from_the_far_past_is_just_stale(
    samples: Samples, settings: Settings, redis: aioredis.Redis, db_path: Path
) -> None:
    stack = Stack(samples, settings, redis, db_path)
    assert await stack.deliver("evt_now", iso(datetime.now(UTC)), "https://h/now") == 202
    assert await stack.deliver("evt_past", "0001-01-01T00:00:00.5+00:00", "https://h/past") == 202
    assert await stack.served_host_url() == "https://h/now"


texts = st.none() | st.text(max_size=8)
meetings = st.none() | st.builds(Meeting, id=st.text(min_size=1, max_size=8),
                                 status=st.sampled_from(sorted(MEETING_STATUSES)),
                                 join_url=texts, password=texts)


@given(event=st.builds(Event, id=st.text(min_size=1, max_size=8), provider=st.just("savvycal"),
                       type=st.text(max_size=8),
                       occurred_at=st.integers(-(2**62), 2**62) | st.just(UNDATED),
                       appointment_id=st.text(min_size=1, max_size=8), start_at=texts,
                       meeting=meetings, no_meeting=st.booleans(),
                       received_at=st.none() | st.integers(0, 2**60),
                       claimed_at=st.none() | st.integers(0, 2**60), account=st.text(max_size=8),
                       participants=st.none() | st.just(()),
                       occurrences=st.none() | st.just(())),
       at=st.integers(0, 2**61), tolerance=st.integers(0, 10**9))
def test_property_received_is_the_replace_it_always_was(
    event: Event, at: int, tolerance: int
) -> None:
    """``received`` copies the event's slots instead of calling ``dataclasses.replace`` (the
    oracle): the same event, equal, hashing alike, serialized alike."""
    if event.occurred_at == UNDATED:
        expected = replace(event, occurred_at=at, received_at=at)
    elif event.occurred_at > at + tolerance:
        expected = replace(event, occurred_at=at, received_at=at, claimed_at=event.occurred_at)
    else:
        expected = replace(event, received_at=at)
    stamped = received(event, at, tolerance)
    assert stamped == expected and hash(stamped) == hash(expected)
    assert stamped.to_json() == expected.to_json()
    assert type(stamped) is Event
