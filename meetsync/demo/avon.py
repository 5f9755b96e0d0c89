"""The Avon Health part of ``meetsync demo``: an Avon workload on the Avon simulator, through the
same stack (receiver + worker) as the other providers, then one reconcile and the comparison
with Avon's truth.

Avon differs from SavvyCal and Zoom where the demo looks:

- Its webhooks are unsigned, so every one is only a *hint* (``POST /webhooks/avon``): the
  receiver queues a fetch in the account's refetch lane (``worker/lanes.py``) and the worker
  reads the appointment from Avon's authenticated API; nothing a delivery says is written. The
  demo waits for the event stream *and* the lanes before it measures.
- A hint makes the worker read the appointment as it is *now*: a lost hint matters only when
  no later one for the same appointment arrives. So once the worker is idle the demo makes a
  few more changes at Avon whose hints are all lost (``--drop`` of the appointments: a
  reschedule, a new Zoom meeting, a switch between video and in person (which loses the
  meeting), or a cancellation), and purges a few appointments the mirror holds: Avon sends no
  webhook for those (``GET`` answers 404 from then on). Only the reconcile can find either;
  a purged one must end ``deleted`` with no meeting.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import meetsync.demo.steps as steps
from meetsync.demo.steps import ACCOUNT, Comparison, say, wall_now
from meetsync.events import iso_utc, to_micros
from meetsync.providers.avon import PROVIDER
from meetsync.providers.avon.mapping import appointment_event
from meetsync.providers.avon.simulator import ROUTES, AvonDelivery, AvonSim
from meetsync.settings import Settings
from meetsync.simulator import Chaos
from meetsync.store import Store, open_store
from meetsync.worker.reconciler import snapshot_of

NAME = "avon"
# Avon documents no rate limit: the simulated account allows 3,000 requests a minute; the
# stack's two processes (the worker's refetches, the demo's reconcile) each budget under it.
SIM_PER_MINUTE = 3000
BUDGET_PER_MINUTE = 2400
DELIVERY_SEED_OFFSET = 700  # Avon's chaos draws differ from the others' under one --seed
PURGED_SHARE = 0.02  # appointments removed at Avon with no webhook, before the reconcile


@dataclass
class AvonWorkload:
    sim: AvonSim
    deliveries: list[AvonDelivery]
    appointments: int
    purged: dict[str, str | None] = field(default_factory=dict)  # id → its end, when removed
    late: Counter[str] = field(default_factory=Counter)  # changes whose hints were all lost


def play(appointments: int, seed: int, end: datetime) -> AvonWorkload:
    say(f"playing an Avon workload: {appointments} appointments (seed {seed})")
    sim, deliveries = steps.played_until(
        lambda start: AvonSim(seed, start=start), end, lambda sim: sim.play(appointments))
    video = sum(a["interaction_type"] == "video_call" for a in sim.appointments.values())
    say(f"  {len(deliveries)} webhooks (unsigned hints), {len(sim.appointments)} appointments "
        f"at Avon ({video} by video call)")
    return AvonWorkload(sim, deliveries, appointments)


def environment(sim: AvonSim, root: str) -> dict[str, str]:
    """The stack's AVON_* variables (``meetsync/providers/avon/config.py``) for ``sim`` served
    at ``root``."""
    credentials = sim.credentials
    return {
        "AVON_API_URL": root,
        "AVON_CLIENT_ID": credentials.client_id,
        "AVON_CLIENT_SECRET": credentials.client_secret,
        "AVON_USER_JWT": credentials.user_jwt,
        "AVON_ACCOUNT": credentials.account,
        "AVON_API_REQUESTS_PER_MINUTE": str(BUDGET_PER_MINUTE),
    }


async def deliver_all(workload: AvonWorkload, url: str, chaos: Chaos, seed: int,
                      progress: Callable[[str], None]) -> dict[str, int]:
    """POST the workload's deliveries, unsigned as Avon sends them, to ``/webhooks/avon``."""
    return await steps.deliver_chunked(
        workload.deliveries, f"{url}/webhooks/{NAME}", signer=workload.sim.signer(),
        chaos=chaos, seed=seed * 1000 + DELIVERY_SEED_OFFSET, label=NAME, progress=progress)


def change_unheard(workload: AvonWorkload, share: float, seed: int) -> None:
    """Change ``share`` of the appointments once more at Avon; every hint of it is lost."""
    sim = workload.sim
    sim.now = max(sim.now, wall_now())  # Avon's clock is the stack's: no change from the past
    rng = random.Random(f"{seed}:avon-late")
    for appointment_id in rng.sample(sorted(sim.appointments),
                                     round(share * len(sim.appointments))):
        status = sim.status(appointment_id)
        if status in ("completed", "cancelled"):
            continue
        video = sim.appointments[appointment_id]["interaction_type"] == "video_call"
        choices = ["switch", "cancel"] + (["new video call"] if video else []) + (
            ["reschedule"] if status in ("scheduled", "confirmed") else [])
        kind = rng.choice(choices)
        if kind == "switch":
            sim.switch(appointment_id)
            kind = "video → in person" if video else "in person → video"
        elif kind == "cancel":
            sim.cancel(appointment_id)
        elif kind == "new video call":
            sim.new_video_call(appointment_id)
        else:
            sim.reschedule(appointment_id)
        workload.late[kind] += 1


def purge(workload: AvonWorkload, held: set[str], seed: int) -> None:
    """Remove a few appointments the mirror holds at Avon, with no webhook (404 from now on)."""
    sim = workload.sim
    candidates = sorted(a for a in sim.appointments if a in held)
    count = min(len(candidates), max(1, round(PURGED_SHARE * len(sim.appointments))))
    for appointment_id in random.Random(f"{seed}:avon-purge").sample(candidates, count):
        workload.purged[appointment_id] = iso_utc(sim.appointments.pop(appointment_id)["end_time"])


def truth(sim: AvonSim) -> dict[str, dict[str, Any]]:
    """Every appointment Avon holds, as ``GET /v2/appointments/{id}`` shows it."""
    stamp = to_micros(sim.now)
    return {
        appointment_id: snapshot_of(appointment_event(
            sim.shown(appointment_id), event_id="truth", type="truth", occurred_at=stamp,
            account=ACCOUNT))
        for appointment_id in sim.appointments
    }


def compare(workload: AvonWorkload, store: Store, now: datetime) -> Comparison:
    return steps.compare(truth(workload.sim), workload.purged, store, provider=NAME,
                              now=now, horizon=PROVIDER.horizon)


async def reconcile_and_report(
    workload: AvonWorkload, settings: Settings, delivered: dict[str, int],
    stats: dict[str, int], started: float, progress: Callable[[str], None], *,
    unheard: float = 0.1,
) -> int:
    """Change ``unheard`` of the appointments at Avon with every hint lost, purge a few held
    ones, compare, reconcile the Avon account once, compare again, report; 0 when every
    appointment in the window matches."""
    sim = workload.sim
    change_unheard(workload, unheard, sim.seed)
    store = open_store(settings.db_path, clock=wall_now)
    try:
        held = set(store.appointments_ending_after("", provider=NAME, account=ACCOUNT))
    finally:
        store.close()
    purge(workload, held, sim.seed)

    def measure(store: Store) -> Comparison:
        return compare(workload, store, wall_now())

    before = steps.compare_in(settings.db_path, wall_now, measure)
    say(f"\navon: before reconcile: {len(before.matching)}/{before.compared} appointments match "
        f"the provider; mismatches by field: {before.mismatches()}")
    refetch_calls = Counter(sim.calls)
    run = await steps.reconcile_once(PROVIDER, settings, wall_now,
                                          lambda line: progress(f"  avon {line}"))
    after = steps.compare_in(settings.db_path, wall_now, measure)

    say("\navon report")
    say(steps.webhooks_line(delivered))
    say(f"  worker: {stats.get('hints', 0)} hints queued a refetch "
        f"({stats.get('hints_folded', 0)} folded into one waiting), "
        f"{sum(refetch_calls.values())} API calls before the reconcile; nothing a delivery "
        "said was written")
    late = ", ".join(f"{n} {kind}" for kind, n in sorted(workload.late.items()))
    say(f"  changed later with every hint lost: {sum(workload.late.values())}"
        + (f" ({late})" if late else ""))
    say(steps.reconciler_line(run, "appointments"))
    if run.errors:
        say(f"  reconciler errors: {run.errors[:5]}")
    say(f"  after reconcile: mismatches by field: {after.mismatches()}")
    say(f"  purged at Avon with no webhook: {len(workload.purged)};{after.deleted_line()[1:]}")
    for line in steps.api_lines("Avon", sim.calls, sim.statuses, ROUTES,
                                     workload.appointments, "appointments"):
        say(line)
    lines, code = after.closing("avon", started)
    for line in lines:
        say(line)
    return code


__all__ = [
    "AvonWorkload",
    "compare",
    "deliver_all",
    "environment",
    "play",
    "purge",
    "reconcile_and_report",
    "truth",
]
