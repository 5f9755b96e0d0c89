"""Freshness: a simulated day of Zoom start URLs, and what keeping them fresh costs in API calls.

``python -m bench --only freshness`` (in the report) or ``python -m bench.stages.freshness
[--meetings N] [--quick]`` (prints a markdown snippet).

One ``ManualClock`` is the day: the Zoom simulator (start URLs die ``TTL`` after it issues them,
tokens after an hour), the store (what a read may serve) and the worker (refetch stamps, the
refresh cron) all read it. ``N`` meetings are created (webhooks verified and parsed by the Zoom
package, applied to the real SQLite store) with starts spread over the next 48 h. Every
simulated minute the real ``refresh_credentials`` cron runs against real Redis and every
refetch waiting in the account's lane runs (``drain_lanes``, the lanes' fetch: a real HTTP
``GET`` to the simulator). Every simulated 5 minutes every meeting not yet over is read
through the read path (``current_meeting(..., refreshable=True)`` at the simulated now) and
each served start URL is checked with ``sim.start_url_valid``.

Then ``meeting.updated`` (a partial payload): the simulator's standard workload is played into a
second mirror; each update is a hint that queues a refetch (one full ``GET``), run as a worker
that keeps up would (after each delivery). The alternative, field-level versions, takes no GET;
it is stated, not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis

from bench.common import Figure, Options, StageResult
from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.providers import Hint
from meetsync.providers.http import RequestBudget
from meetsync.providers.keys import settings_from_env
from meetsync.providers.zoom import PROVIDER, ZoomClient
from meetsync.providers.zoom.simulator import ZoomDelivery, ZoomSim
from meetsync.queue import request_refetch
from meetsync.simulator import serve_in_background
from meetsync.simulator.clock import ManualClock
from meetsync.store import Store, open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.main import (
    ConnectedAccount,
    WorkerContext,
    drain_lanes,
    refresh_credentials,
)

SEED = 11
TTL = 7200
DAY = 86_400
CRON_EVERY = 60
READ_EVERY = 300
HORIZON_HOURS = 48
GET = "GET /v2/meetings/{meetingId}"


@dataclass
class Day:
    """What one simulated day counted."""

    meetings: int
    seconds: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    refetches: int = 0
    reads: int = 0
    served: int = 0
    valid: int = 0
    in_window: int = 0
    in_window_served: int = 0
    invalid_examples: list[str] = field(default_factory=list)


@dataclass
class Updates:
    meetings: int
    updates: int = 0
    gets: int = 0
    hints: Counter[str] = field(default_factory=Counter)


class Harness:
    """A Zoom account on the simulator, a real store and Redis, a hand-built worker context."""

    def __init__(self, sim: ZoomSim, clock: ManualClock, t0: datetime, root: str, db: Path,
                 redis_url: str) -> None:
        self.sim, self.clock, self.t0 = sim, clock, t0
        account = sim.account
        self.settings = settings_from_env({
            "MEETSYNC_DB": str(db),
            "REDIS_URL": redis_url,
            "ZOOM_API_URL": f"{root}/v2",
            "ZOOM_OAUTH_URL": f"{root}/oauth/token",
            "ZOOM_ACCOUNT_ID": account.account_id,
            "ZOOM_CLIENT_ID": account.client_id,
            "ZOOM_CLIENT_SECRET": account.client_secret,
            "ZOOM_WEBHOOK_SECRET_TOKEN": account.secret_token,
            "ZOOM_START_URL_TTL_SECONDS": str(TTL),
        })
        zoom = self.settings.accounts_of("zoom")[0]
        # The budget is not what is measured: no throttling (the sim's limit is lifted too).
        budget = RequestBudget(1_000_000, window=1.0)
        api = ZoomClient(account_id=account.account_id, client_id=account.client_id,
                         client_secret=account.client_secret, budget=budget,
                         api_url=f"{root}/v2", oauth_url=f"{root}/oauth/token",
                         ttl_seconds=TTL, clock=clock)  # token lifetime on the simulated clock
        self.api = api
        self.arq = ArqRedis.from_url(redis_url)
        self.store = StoreThread(lambda: open_store(db, clock=self.wall))
        state = WorkerContext(self.settings, self.arq, self.store, applier=None,  # type: ignore[arg-type]
                              applier_task=None,  # type: ignore[arg-type]
                              connections={zoom.key: ConnectedAccount(PROVIDER, zoom, budget, api)},
                              clock=self.wall)
        self.ctx: dict[str, Any] = {"meetsync": state}
        self.hooks = PROVIDER.webhooks([zoom])

    def wall(self) -> datetime:
        return self.t0 + timedelta(seconds=self.clock.now)

    async def close(self) -> None:
        await self.api.aclose()
        self.store.close()
        await self.arq.aclose()

    async def deliver(self, deliveries: list[ZoomDelivery]) -> Counter[str]:
        """Verify, parse and apply (a hint: queue a refetch, as the receiver does)."""
        hints: Counter[str] = Counter()
        events: list[Event] = []
        for delivery in deliveries:
            headers = delivery.headers(self.sim.account.secret_token)
            account = self.hooks.verify(delivery.body, headers)
            found = self.hooks.parse(delivery.body, account)
            if isinstance(found, Hint):
                hints[found.type] += 1
                await request_refetch(self.arq, "zoom", account, found.appointment_id)
            elif isinstance(found, Event):
                events.append(found)
        if events:
            await self.store.run(lambda store: store.apply(events))
        return hints

    async def run_jobs(self) -> int:
        """Every waiting refetch once, as the worker's lanes would, then off the lane."""
        ran = 0
        for _, appointment_id, outcome in await drain_lanes(WorkerContext.of(self.ctx)):
            if outcome != "applied":
                raise RuntimeError(f"refetch {appointment_id}: {outcome}")
            ran += 1
        return ran


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


async def simulate_day(n: int, workdir: Path, redis_url: str) -> Day:
    clock = ManualClock()
    t0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    # Webhooks predate the day (creating n meetings moves the sim's time ~1 s each).
    sim = ZoomSim(SEED, start=t0 - timedelta(hours=3), clock=clock)
    rng = random.Random(SEED)
    created = [
        sim.create(start_time=t0 + timedelta(minutes=15 * rng.randrange(HORIZON_HOURS * 4)))
        for _ in range(n)
    ]
    starts = {str(d.meeting_id): sim.meetings[d.meeting_id]  # type: ignore[index]
              for d in created}
    spans = {
        key: (datetime.fromisoformat(m["start_time"].replace("Z", "+00:00")),
              datetime.fromisoformat(m["start_time"].replace("Z", "+00:00"))
              + timedelta(minutes=m["duration"]))
        for key, m in starts.items()
    }
    day = Day(n)
    app = sim.asgi_app(start_url_ttl_seconds=TTL, per_second_limit=1_000_000)
    with serve_in_background(app) as root:
        h = Harness(sim, clock, t0, root, workdir / "day.db", redis_url)
        await h.arq.flushdb()
        try:
            await h.deliver(created)
            window = timedelta(seconds=h.settings.refresh_window_seconds)
            started = time.perf_counter()
            for minute in range(DAY // CRON_EVERY + 1):
                await clock.advance_to(minute * CRON_EVERY)
                await refresh_credentials(h.ctx, now=h.wall())  # simulated time: no claim
                day.refetches += await h.run_jobs()
                if (minute * CRON_EVERY) % READ_EVERY == 0:
                    now = h.wall()
                    due = [key for key, (_, end) in spans.items() if end > now]
                    views = await h.store.run(partial(_read_all, keys=due))
                    for key, view in zip(due, views, strict=True):
                        start, _ = spans[key]
                        served = view is not None and view["host_url"] is not None
                        day.reads += 1
                        inside = start < now + window
                        day.in_window += inside
                        if served:
                            assert view is not None
                            day.served += 1
                            day.in_window_served += inside
                            if sim.start_url_valid(view["host_url"]):
                                day.valid += 1
                            elif len(day.invalid_examples) < 5:
                                day.invalid_examples.append(f"{key} at {_iso(now)}")
            day.seconds = time.perf_counter() - started
        finally:
            await h.close()
    day.calls = Counter(sim.calls)
    return day


def _read_all(store: Store, keys: list[str]) -> list[dict[str, Any] | None]:
    return [store.current_meeting(key, provider="zoom", refreshable=True) for key in keys]


async def simulate_updates(n: int, workdir: Path, redis_url: str) -> Updates:
    clock = ManualClock()
    t0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    sim = ZoomSim(SEED + 1, start=t0 - timedelta(hours=12), clock=clock)
    deliveries = sim.play(n)
    found = Updates(n)
    with serve_in_background(sim.asgi_app(per_second_limit=1_000_000)) as root:
        h = Harness(sim, clock, t0, root, workdir / "updates.db", redis_url)
        await h.arq.flushdb()
        try:
            for delivery in deliveries:  # a worker that keeps up: each hint's job runs at once
                found.hints += await h.deliver([delivery])
                await h.run_jobs()
        finally:
            await h.close()
    found.updates = sum(1 for d in deliveries if d.event == "meeting.updated")
    found.gets = sim.calls[GET]
    return found


def per_thousand(count: float, of: int) -> float:
    return 1000 * count / of if of else 0.0


def markdown(day: Day, updates: Updates, command: str) -> list[str]:
    valid_pct = 100 * day.valid / day.served if day.served else 0.0
    window_pct = 100 * day.in_window_served / day.in_window if day.in_window else 0.0
    routes = "\n".join(
        f"| `{route}` | {count:,} | {per_thousand(count, day.meetings):,.0f} |"
        for route, count in sorted(day.calls.items()))
    total = sum(day.calls.values())
    other_gets = updates.gets - updates.hints["meeting.updated"]
    return [
        f"### Zoom start URL freshness (`{command}`)",
        "",
        f"A simulated day (ManualClock) of {day.meetings:,} Zoom meetings starting over the "
        f"next {HORIZON_HOURS} h: start URLs live {TTL // 3600} h, refresh cron every "
        f"{CRON_EVERY} s (window 24 h, margin 15 min), refetch jobs run against the Zoom "
        f"simulator over HTTP; every {READ_EVERY // 60} min every meeting not yet over read "
        f"through the store's read path. {day.seconds:.0f} s of wall time.",
        "",
        "| route | calls | per 1,000 meetings per day |",
        "|---|---:|---:|",
        routes,
        f"| **total** | {total:,} | {per_thousand(total, day.meetings):,.0f} |",
        "",
        f"- served start URLs valid at read time (`sim.start_url_valid`): {day.valid:,} of "
        f"{day.served:,} = **{valid_pct:.2f} %** (target 100 %)"
        + (f"; invalid e.g. {', '.join(day.invalid_examples)}" if day.invalid_examples else ""),
        f"- reads of meetings inside the refresh window (start < now + 24 h, not over) that "
        f"had a start URL: {day.in_window_served:,} of {day.in_window:,} = "
        f"**{window_pct:.2f} %** ({day.reads:,} reads in all; outside the window none is "
        "served by design: the read says `host_url_refresh_pending` and `?fresh=true` gets one)",
        f"- refetch jobs run: {day.refetches:,} "
        f"({per_thousand(day.refetches, day.meetings):,.0f} per 1,000 meetings per day)",
        "",
        "`meeting.updated` carries only the changed fields:",
        "",
        f"- hint → full GET (ours), measured: the simulator's workload of {updates.meetings:,} "
        f"meetings played {updates.updates:,} `meeting.updated` webhooks; with a worker that "
        f"keeps up they caused {updates.hints['meeting.updated']:,} refetches = "
        f"**{per_thousand(updates.hints['meeting.updated'], updates.updates):,.0f} GETs per "
        f"1,000 updates** ({updates.gets:,} GETs in all; {other_gets} for other hints). A "
        "refetch waiting in the queue absorbs further hints for its meeting, so a lagging "
        "worker makes fewer.",
        "- field-level versions (the alternative), stated: 0 extra GETs per update, but every "
        "mirrored field needs its own version (event time per field), the mirror must merge "
        "partials field by field, and an update still carries no `start_url`, so the credential "
        "refresh GETs above are needed either way.",
    ]


def measure(n: int, workdir: Path, updates_n: int) -> tuple[Day, Updates]:
    workdir.mkdir(parents=True, exist_ok=True)
    with RedisServer(workdir / "redis", persistent=False) as server:
        day = asyncio.run(simulate_day(n, workdir, server.url))
        updates = asyncio.run(simulate_updates(updates_n, workdir, server.url))
    return day, updates


def run(options: Options) -> StageResult:
    result = StageResult("freshness")
    n = options.count(1000, 60)
    day, updates = measure(n, options.workdir / "freshness", options.count(1000, 60))
    valid = Figure("freshness: served start URLs valid", "%",
                   100 * day.valid / day.served if day.served else 0.0)
    valid.target = "= 100 %"
    valid.met = day.served > 0 and day.valid == day.served
    valid.note = f"{day.valid:,} of {day.served:,} served start URLs valid at read time"
    window = Figure("freshness: in-window reads with a start URL", "%",
                    100 * day.in_window_served / day.in_window if day.in_window else 0.0)
    total = sum(day.calls.values())
    calls = Figure("freshness: API calls per 1,000 meetings per day", "calls",
                   per_thousand(total, day.meetings))
    calls.note = ", ".join(f"{route} {per_thousand(count, day.meetings):,.0f}"
                           for route, count in sorted(day.calls.items()))
    gets = Figure("meeting.updated: GETs per 1,000 updates", "GETs",
                  per_thousand(updates.hints["meeting.updated"], updates.updates), 0.0)
    gets.note = "baseline column: field-level versions (0 GETs, not measured)"
    result.figures += [valid, window, calls, gets]
    result.commands.append(f"ours: a simulated day of {n} Zoom meetings (bench/stages/"
                           "freshness.py): refresh cron each minute, reads each 5 minutes")
    result.notes += markdown(day, updates, "python -m bench --only freshness")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages.freshness")
    parser.add_argument("--meetings", type=int, default=1000)
    parser.add_argument("--updates-meetings", type=int, default=1000,
                        help="meetings in the meeting.updated workload")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    import tempfile

    from meetsync.log import configure

    configure("WARNING")
    with tempfile.TemporaryDirectory(prefix="meetsync-freshness-") as tmp:
        day, updates = measure(args.meetings, args.workdir or Path(tmp), args.updates_meetings)
    shown = ["python -m bench.stages.freshness", *(argv if argv is not None else sys.argv[1:])]
    print("\n".join(markdown(day, updates, " ".join(shown))))
    return 0 if day.served and day.valid == day.served else 1


if __name__ == "__main__":
    sys.exit(main())

