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
- The sweep lists one user's meetings (``ZOOM_USER_ID``, ``me``: the account owner), so the
  simulated account has one host (see the report's notes).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from meetsync.events import iso_utc, to_micros
from meetsync.providers.zoom import PROVIDER
from meetsync.providers.zoom.config import START_URL_TTL_SECONDS
from meetsync.providers.zoom.mapping import deleted_event, meeting_event
from meetsync.providers.zoom.simulator import ROUTES, ZoomDelivery, ZoomSim, played_until
from meetsync.settings import Settings
from meetsync.simulator import Chaos, deliver
from meetsync.store import Store, open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler, drift, snapshot_of

NAME = "zoom"
ACCOUNT = "default"
# The simulated account's limit: Zoom's "Light" APIs on a Pro plan (30/s). The stack's two
# processes (the worker's refetches, the demo's reconcile) each budget a little under it.
SIM_PER_SECOND = 30
BUDGET_PER_SECOND = 20
# A fresh start URL on every GET: compared on its own (the start-URL check), not as drift.
SKIP = ("meeting.host_url",)
DELIVERY_SEED_OFFSET = 500  # Zoom's chaos draws differ from SavvyCal's under one --seed


@dataclass
class ZoomWorkload:
    sim: ZoomSim
    deliveries: list[ZoomDelivery]
    meetings: int


@dataclass
class Comparison:
    """How the mirror stands against Zoom's truth, in the reconciler's window."""

    matching: set[str] = field(default_factory=set)
    fields: Counter[str] = field(default_factory=Counter)
    compared: int = 0
    outside: int = 0
    deleted: int = 0  # deleted meetings in the window
    deleted_unknown: int = 0  # of which the mirror never heard (it serves nothing either)


def say(line: str) -> None:
    print(line, flush=True)


def play(meetings: int, seed: int, end: datetime) -> ZoomWorkload:
    say(f"playing a Zoom workload: {meetings} meetings (seed {seed}, one host)")
    sim, deliveries = played_until(
        end, seed, lambda sim: sim.play(meetings), users_per_account=1
    )
    say(f"  {len(deliveries)} webhooks, {len(sim.meetings)} meetings at Zoom "
        f"({len(sim.deleted)} deleted)")
    return ZoomWorkload(sim, deliveries, meetings)


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
        "ZOOM_USER_ID": "me",
    }


async def deliver_all(
    workload: ZoomWorkload, url: str, chaos: Chaos, seed: int,
    progress: Callable[[str], None],
) -> dict[str, int]:
    """POST the workload's deliveries, signed as Zoom signs, to ``{url}/webhooks/zoom``."""
    deliveries = workload.deliveries
    signer = workload.sim.signer()
    totals: Counter[str] = Counter()
    chunk = max(1, len(deliveries) // 10)
    t0 = time.monotonic()
    for n, start in enumerate(range(0, len(deliveries), chunk)):
        part = await deliver(
            deliveries[start : start + chunk], f"{url}/webhooks/{NAME}", signer=signer,
            chaos=chaos, seed=seed * 1000 + DELIVERY_SEED_OFFSET + n,
        )
        totals.update(sent=part.sent, dropped=part.dropped, duplicated=part.duplicated,
                      accepted=part.accepted, failed=part.failed,
                      rejected=sum(part.rejected.values()))
        done = min(start + chunk, len(deliveries))
        rate = totals["sent"] / max(time.monotonic() - t0, 1e-9)
        progress(f"  zoom: delivered {done}/{len(deliveries)} webhooks ({rate:,.0f} POST/s)")
    return dict(totals)


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
    cutoff = iso_utc(now - PROVIDER.horizon)
    found = Comparison()
    known = truth(sim, now)
    in_window = {k: v for k, v in known.items() if v["end_at"] is None or v["end_at"] > cutoff}
    gone = [k for k, end in deleted_ends(sim).items() if end is None or end > cutoff]
    found.outside = len(known) - len(in_window) + len(sim.deleted) - len(gone)
    mirror = store.snapshots([*in_window, *gone], provider=NAME)
    for meeting_id, expected in in_window.items():
        fields = drift(expected, mirror.get(meeting_id), skip=SKIP)
        found.fields.update(fields)
        if not fields:
            found.matching.add(meeting_id)
    for meeting_id in gone:
        held = mirror.get(meeting_id)
        if held is None:
            found.deleted_unknown += 1
            found.matching.add(meeting_id)
        elif held["status"] == "deleted" and held["meeting_id"] is None:  # reconciler's _gone
            found.matching.add(meeting_id)
        else:
            found.fields.update(["deleted"])
    found.deleted = len(gone)
    found.compared = len(in_window) + len(gone)
    return found


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


def api_lines(sim: ZoomSim, meetings: int) -> list[str]:
    total = sum(sim.calls.values())
    limited = sum(n for (_, status), n in sim.statuses.items() if status == 429)
    lines = [f"  Zoom API: {total} calls ({1000 * total / max(meetings, 1):,.1f} per 1,000 "
             f"meetings played), {limited} answered 429"]
    for route in ROUTES:
        if sim.calls[route]:
            lines.append(f"    {route}: {sim.calls[route]} "
                         f"({1000 * sim.calls[route] / max(meetings, 1):,.1f} per 1,000)")
    return lines


async def reconcile_and_report(
    workload: ZoomWorkload, settings: Settings, url: str, delivered: dict[str, int],
    stats: dict[str, int], started: float, progress: Callable[[str], None],
) -> int:
    """Compare, reconcile the Zoom account once, compare again, check the start URLs, report;
    0 when every meeting in the window matches and no served start URL is dead."""
    sim = workload.sim
    now = sim.wall_now()
    store = open_store(settings.db_path, clock=sim.wall_now)
    before = compare(sim, store, now)
    store.close()
    say(f"\nzoom: before reconcile: {len(before.matching)}/{before.compared} meetings match "
        f"the provider; mismatches by field: {dict(sorted(before.fields.items())) or 'none'}")
    refetch_calls = Counter(sim.calls)

    account = settings.account(NAME)
    assert account is not None, "the demo configures a default Zoom account"
    api = PROVIDER.api(account, PROVIDER.budget(account))
    assert api is not None, "the demo configures Zoom's API credentials"
    thread = StoreThread(lambda: open_store(settings.db_path, clock=sim.wall_now))
    try:
        run = await Reconciler(api, thread, horizon=PROVIDER.horizon, clock=sim.wall_now,
                               progress=lambda line: progress(f"  zoom {line}")).run()
    finally:
        await api.aclose()
        thread.close()
    now = sim.wall_now()
    store = open_store(settings.db_path, clock=sim.wall_now)
    after = compare(sim, store, now)
    store.close()
    urls = await check_start_urls(sim, url, settings.read_token or "", now)
    converged = after.matching - urls.invalid

    summary = run.summary()
    per_1000 = 1000 * run.api_calls / max(run.appointments_seen, 1)
    worker_gets = sum(refetch_calls.values())
    say("\nzoom report")
    say(f"  webhooks: {delivered.get('sent', 0)} sent, {delivered.get('dropped', 0)} dropped, "
        f"{delivered.get('duplicated', 0)} duplicated, {delivered.get('accepted', 0)} accepted, "
        f"{delivered.get('rejected', 0) + delivered.get('failed', 0)} refused or failed")
    say(f"  worker: {stats.get('applied', 0)} applied, {stats.get('duplicates', 0)} duplicates "
        f"ignored, {stats.get('stale', 0)} stale ignored, {stats.get('dead_letters', 0)} dead "
        f"letters; {stats.get('hints', 0)} hints queued a refetch "
        f"({stats.get('hints_folded', 0)} folded into one waiting), {worker_gets} API calls "
        "before the reconcile")
    say(f"  reconciler: outcome {summary['outcome']}, {run.api_calls} API calls "
        f"({per_1000:.1f} per 1,000 meetings swept), {run.pages} pages, "
        f"{run.drifted} drifted, {run.repaired} repaired, {run.gone} gone, drift by field "
        f"{summary['drift_by_field'] or 'none'}")
    if run.errors:
        say(f"  reconciler errors: {run.errors[:5]}")
    say(f"  after reconcile: mismatches by field: {dict(sorted(after.fields.items())) or 'none'}")
    say(f"  deleted: {after.deleted} in the window, "
        f"{after.deleted - after.deleted_unknown} gone from the mirror, "
        f"{after.deleted_unknown} never reached it")
    say(urls.line())
    if urls.invalid:
        say(f"  dead start URLs served for: {sorted(urls.invalid)[:10]}")
    for line in api_lines(sim, workload.meetings):
        say(line)
    if after.outside:
        say(f"  {after.outside} meetings ended over 24 h ago: outside the reconciler's window")
    say(f"  took {time.monotonic() - started:.1f} s")
    say(f"converged: {len(converged)}/{after.compared} zoom meetings match the provider")
    return 0 if len(converged) == after.compared else 1


__all__ = [
    "ZoomWorkload",
    "check_start_urls",
    "compare",
    "deliver_all",
    "environment",
    "play",
    "reconcile_and_report",
]
