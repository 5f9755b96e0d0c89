"""The Zoom part of ``meetsync demo``: a Zoom workload on the Zoom simulator, through the same
stack (receiver + worker) as SavvyCal's, then one reconcile and the comparison with Zoom's truth.

Zoom differs from SavvyCal where the demo looks:

- ``meeting.updated`` is a partial: the receiver turns it into a *hint* that queues an arq job
  (``refetch_appointment``); the worker runs it against the Zoom API. The demo waits for the
  event stream *and* those jobs before it measures.
- Webhooks never carry the host's ``start_url``: only ``GET /meetings/{id}`` does, valid 2 h.
  The truth is therefore compared on every field but ``meeting.host_url`` (a fresh URL on every
  GET), and the start-URL promise is checked on its own: what the read API serves for each
  upcoming meeting is null or a URL Zoom would accept now (``sim.start_url_valid``).
- The simulated account has ``HOSTS`` hosts, and the sweep lists every active one
  (``GET /users``, then each one's meetings). A few meetings of the second host are created
  with their webhooks never sent: only the sweep can find them, and the report says it did.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

import meetsync.demo.steps as steps
from meetsync.demo.steps import ACCOUNT, Comparison, say
from meetsync.events import iso_utc, to_micros
from meetsync.providers.zoom import PROVIDER
from meetsync.providers.zoom.config import START_URL_TTL_SECONDS
from meetsync.providers.zoom.mapping import deleted_event, meeting_event
from meetsync.providers.zoom.simulator import ROUTES, ZoomDelivery, ZoomSim, played_until
from meetsync.settings import Settings
from meetsync.simulator import Chaos
from meetsync.store import Store, open_store
from meetsync.worker.reconciler import snapshot_of

NAME = "zoom"
# The simulated account's limit: Zoom's "Light" APIs on a Pro plan (30/s). The stack's two
# processes (the worker's refetches, the demo's reconcile) each budget a little under it.
SIM_PER_SECOND = 30
BUDGET_PER_SECOND = 20
# A fresh start URL on every GET: compared on its own (the start-URL check), not as drift.
SKIP = ("meeting.host_url",)
DELIVERY_SEED_OFFSET = 500  # Zoom's chaos draws differ from SavvyCal's under one --seed
HOSTS = 3
UNHEARD = 5  # meetings of the second host whose webhooks are never sent


@dataclass
class ZoomWorkload:
    sim: ZoomSim
    deliveries: list[ZoomDelivery]
    meetings: int
    unheard: list[str] = field(default_factory=list)  # created, their webhooks never sent


def play(meetings: int, seed: int, end: datetime) -> ZoomWorkload:
    say(f"playing a Zoom workload: {meetings} meetings (seed {seed}, {HOSTS} hosts)")

    def workload(sim: ZoomSim) -> list[ZoomDelivery]:
        deliveries = sim.play(meetings)
        second = sim.account.users[1]
        for hours in range(2, 2 + UNHEARD):  # upcoming; their deliveries are dropped
            sim.create(host=second, start_time=sim.now + timedelta(hours=hours))
        return deliveries

    sim, deliveries = played_until(end, seed, workload, users_per_account=HOSTS)
    unheard = [str(d.meeting_id) for d in sim.history[len(deliveries):]]
    say(f"  {len(deliveries)} webhooks, {len(sim.meetings)} meetings at Zoom "
        f"({len(sim.deleted)} deleted), {len(unheard)} of the second host's never sent")
    return ZoomWorkload(sim, deliveries, meetings, unheard)


def environment(sim: ZoomSim, root: str) -> dict[str, str]:
    """The stack's ZOOM_* variables (``meetsync/providers/zoom/config.py``) for ``sim`` served
    at ``root``."""
    account = sim.account
    return {
        "ZOOM_WEBHOOK_SECRET_TOKEN": account.secret_token,
        "ZOOM_API_URL": f"{root}/v2",
        "ZOOM_OAUTH_URL": f"{root}/oauth/token",
        "ZOOM_ACCOUNT_ID": account.account_id,
        "ZOOM_CLIENT_ID": account.client_id,
        "ZOOM_CLIENT_SECRET": account.client_secret,
        "ZOOM_API_REQUESTS_PER_SECOND": str(BUDGET_PER_SECOND),
        "ZOOM_START_URL_TTL_SECONDS": str(START_URL_TTL_SECONDS),
    }  # no ZOOM_USER_IDS: the sweep lists every active user


async def deliver_all(
    workload: ZoomWorkload, url: str, chaos: Chaos, seed: int,
    progress: Callable[[str], None],
) -> dict[str, int]:
    """POST the workload's deliveries, signed as Zoom signs, to ``{url}/webhooks/zoom``."""
    return await steps.deliver_chunked(
        workload.deliveries, f"{url}/webhooks/{NAME}", signer=workload.sim.signer(),
        chaos=chaos, seed=seed * 1000 + DELIVERY_SEED_OFFSET, label=NAME, progress=progress)


def deleted_ends(sim: ZoomSim) -> dict[str, str | None]:
    """Each deleted meeting's end (from its ``meeting.deleted`` object: the truth no longer
    holds it), to place it in or out of the window."""
    ends: dict[str, str | None] = {}
    for delivery in sim.history:
        if delivery.event == "meeting.deleted" and delivery.meeting_id in sim.deleted:
            obj = delivery.envelope()["payload"]["object"]
            event = deleted_event(obj, event_id="truth", type="truth", occurred_at=0,
                                  account=ACCOUNT)
            ends[event.appointment_id] = event.end_at
    return ends


def truth(sim: ZoomSim, now: datetime) -> dict[str, dict[str, Any]]:
    """Every meeting Zoom holds, as ``GET /meetings/{id}`` would show it (no start URL)."""
    stamp = to_micros(now)
    return {
        str(meeting_id): snapshot_of(meeting_event(
            sim.meeting(meeting_id), event_id="truth", type="truth", occurred_at=stamp,
            account=ACCOUNT, ttl_seconds=START_URL_TTL_SECONDS, fetched=True))
        for meeting_id in sim.meetings
    }


def compare(sim: ZoomSim, store: Store, now: datetime) -> Comparison:
    """Meetings (ending after now minus Zoom's horizon) that match the truth, and the
    deleted ones that are gone from the mirror: ``deleted``, no current meeting."""
    return steps.compare(truth(sim, now), deleted_ends(sim), store, provider=NAME,
                              now=now, horizon=PROVIDER.horizon, skip=SKIP)


@dataclass
class StartUrls:
    upcoming: int = 0
    served: int = 0
    valid: int = 0
    invalid: set[str] = field(default_factory=set)

    def line(self) -> str:
        share = f"{100 * self.valid / self.served:.1f} %" if self.served else "none served"
        return (f"  start URLs served: {self.served}, valid: {self.valid} ({share}); "
                f"{self.upcoming} upcoming meetings, {self.upcoming - self.served} without one "
                "yet (null)")


async def check_start_urls(sim: ZoomSim, url: str, read_token: str, now: datetime) -> StartUrls:
    """What the read API serves for every upcoming (or live) meeting: its ``host_url`` must be
    null or a start URL Zoom accepts now."""
    at = iso_utc(now)
    upcoming = [k for k, v in truth(sim, now).items() if v["end_at"] is None or v["end_at"] > at]
    found = StartUrls(upcoming=len(upcoming))
    headers = {"authorization": f"Bearer {read_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        for meeting_id in upcoming:
            response = await client.get(f"/v1/{NAME}/appointments/{meeting_id}/meeting")
            if response.status_code == 404:
                continue
            response.raise_for_status()
            host_url = response.json().get("host_url")
            if host_url is None:
                continue
            found.served += 1
            if sim.start_url_valid(host_url):
                found.valid += 1
            else:
                found.invalid.add(meeting_id)
    return found


def unheard_found(workload: ZoomWorkload, db_path: str, now: datetime) -> int:
    """How many of the meetings whose webhooks were never sent the mirror holds, as Zoom
    does (start and join URL)."""
    store = open_store(db_path, clock=lambda: now)
    try:
        held = store.snapshots(workload.unheard, provider=NAME)
    finally:
        store.close()
    found = 0
    for meeting_id in workload.unheard:
        truth = workload.sim.meeting(int(meeting_id))
        row = held.get(meeting_id)
        found += bool(row and row["start_at"] == truth["start_time"]
                      and row["meeting.join_url"] == truth["join_url"])
    return found


def api_lines(sim: ZoomSim, meetings: int) -> list[str]:
    return steps.api_lines("Zoom", sim.calls, sim.statuses, ROUTES, meetings, "meetings")


async def reconcile_and_report(
    workload: ZoomWorkload, settings: Settings, url: str, delivered: dict[str, int],
    stats: dict[str, int], started: float, progress: Callable[[str], None],
) -> int:
    """Compare, reconcile the Zoom account once, compare again, check the start URLs, report;
    0 when every meeting in the window matches and no served start URL is dead."""
    sim = workload.sim

    def measure(store: Store) -> Comparison:
        return compare(sim, store, sim.wall_now())

    before = steps.compare_in(settings.db_path, sim.wall_now, measure)
    say(f"\nzoom: before reconcile: {len(before.matching)}/{before.compared} meetings match "
        f"the provider; mismatches by field: {before.mismatches()}")
    refetch_calls = Counter(sim.calls)
    run = await steps.reconcile_once(PROVIDER, settings, sim.wall_now,
                                          lambda line: progress(f"  zoom {line}"))
    now = sim.wall_now()
    after = steps.compare_in(settings.db_path, sim.wall_now, measure)
    urls = await check_start_urls(sim, url, settings.read_token or "", now)
    converged = after.matching - urls.invalid

    say("\nzoom report")
    say(steps.webhooks_line(delivered))
    say(steps.worker_line(stats, sum(refetch_calls.values())))
    say(steps.reconciler_line(run, "meetings"))
    if run.errors:
        say(f"  reconciler errors: {run.errors[:5]}")
    say(f"  after reconcile: mismatches by field: {after.mismatches()}")
    say(after.deleted_line())
    say(urls.line())
    found = unheard_found(workload, settings.db_path, now)
    say(f"  second host, no webhooks: {found}/{len(workload.unheard)} of its meetings found "
        f"by the sweep ({len(sim.account.users)} hosts swept)")
    if urls.invalid:
        say(f"  dead start URLs served for: {sorted(urls.invalid)[:10]}")
    for line in api_lines(sim, workload.meetings):
        say(line)
    if after.outside:
        minutes = PROVIDER.horizon.total_seconds() / 60
        say(f"  {after.outside} meetings ended over {minutes:.0f} min ago: outside the "
            "reconciler's window")
    say(f"  took {time.monotonic() - started:.1f} s")
    say(f"converged: {len(converged)}/{after.compared} zoom meetings match the provider")
    return 0 if len(converged) == after.compared and found == len(workload.unheard) else 1


__all__ = [
    "ZoomWorkload",
    "check_start_urls",
    "compare",
    "deliver_all",
    "environment",
    "play",
    "reconcile_and_report",
]
