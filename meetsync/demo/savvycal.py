"""The SavvyCal part of ``meetsync demo``: a SavvyCal workload on the SavvyCal simulator, its
webhooks signed natively or as Standard Webhooks and delivered under chaos, then one reconcile
run over the provider's API and the comparison of the mirror with the provider's truth.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from meetsync.demo.steps import say
from meetsync.events import iso_utc, to_micros
from meetsync.providers.savvycal import appointment_event
from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.envelope import CREDENTIAL_LIFETIME
from meetsync.providers.savvycal.simulator import (
    Delivery,
    SavvyCalSim,
    Scheme,
    played_until,
    signer,
)
from meetsync.settings import Settings
from meetsync.simulator import Chaos, deliver
from meetsync.store import Store, open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler, drift, snapshot_of


def play(appointments: int, seed: int, end: datetime) -> tuple[SavvyCalSim, list[Delivery]]:
    """``appointments`` lifecycles played to end at ``end`` (the provider's truth, its
    webhooks)."""
    return played_until(end, seed, lambda sim: sim.play(appointments))


def compare(sim: SavvyCalSim, store: Store) -> tuple[int, Counter[str], int]:
    """(appointments matching, mismatches per field, appointments compared) in the window."""
    now = sim.now
    cutoff = iso_utc(now - CREDENTIAL_LIFETIME)
    truth = {
        appointment_id: snapshot_of(appointment_event(
            obj, event_id="truth", type="truth", occurred_at=to_micros(now)))
        for appointment_id, obj in sim.appointments.items()
    }
    in_window = {k: v for k, v in truth.items() if v["end_at"] is None or v["end_at"] > cutoff}
    mirror = store.snapshots(list(in_window))
    fields: Counter[str] = Counter()
    matching = 0
    for appointment_id, expected in in_window.items():
        found = drift(expected, mirror.get(appointment_id), expired=False)
        fields.update(found)
        matching += not found
    return matching, fields, len(in_window)


async def deliver_all(deliveries: list[Delivery], url: str, chaos: Chaos, scheme: Scheme,
                      secret: str, seed: int, progress: Callable[[str], None]
                      ) -> dict[str, int]:
    """POST the deliveries in ten chunks under ``chaos``, signed by ``scheme``, with progress."""
    totals: Counter[str] = Counter()
    chunk = max(1, len(deliveries) // 10)
    t0 = time.monotonic()
    for n, start in enumerate(range(0, len(deliveries), chunk)):
        part = await deliver(
            deliveries[start : start + chunk], f"{url}/webhooks/savvycal",
            signer=signer(scheme, secret), chaos=chaos, seed=seed * 1000 + n,
        )
        totals.update(sent=part.sent, dropped=part.dropped, duplicated=part.duplicated,
                      accepted=part.accepted, failed=part.failed,
                      rejected=sum(part.rejected.values()))
        done = min(start + chunk, len(deliveries))
        rate = totals["sent"] / max(time.monotonic() - t0, 1e-9)
        progress(f"  delivered {done}/{len(deliveries)} webhooks ({rate:,.0f} POST/s)")
    return dict(totals)


async def reconcile_and_report(
    sim: SavvyCalSim, settings: Settings, delivered: dict[str, int], stats: dict[str, int],
    started: float, progress: Callable[[str], None],
) -> int:
    # Time passed at the provider too: the comparison, the reconciler and the mirror's writes
    # share this one "now" (what has expired is decided once).
    sim.now = max(sim.now, datetime.now(UTC))
    store = open_store(settings.db_path, clock=lambda: sim.now)
    before_ok, before_fields, compared = compare(sim, store)
    replacements = store.conn.execute(
        "SELECT count(*) FROM meetings WHERE replaced_by IS NOT NULL").fetchone()[0]
    store.close()
    say(f"before reconcile: {before_ok}/{compared} appointments match the provider; "
        f"mismatches by field: {dict(sorted(before_fields.items())) or 'none'}")

    account = settings.account("savvycal")
    assert account is not None  # the demo's settings hold the simulator's account
    budget = RequestBudget(account.number("requests_per_minute"))
    thread = StoreThread(lambda: open_store(settings.db_path, clock=lambda: sim.now))
    async with SavvyCalClient(account.text("api_url") or "", account.text("api_token") or "",
                              budget=budget) as client:
        run = await Reconciler(client, thread, clock=lambda: sim.now,
                               progress=lambda line: progress(f"  {line}")).run()
    thread.close()
    store = open_store(settings.db_path)
    after_ok, after_fields, compared = compare(sim, store)
    store.close()
    summary = run.summary()
    per_1000 = 1000 * run.api_calls / max(run.appointments_seen, 1)
    say("\nreport")
    say(f"  webhooks: {delivered.get('sent', 0)} sent, {delivered.get('dropped', 0)} dropped, "
        f"{delivered.get('duplicated', 0)} duplicated, {delivered.get('accepted', 0)} accepted, "
        f"{delivered.get('rejected', 0) + delivered.get('failed', 0)} refused or failed")
    say(f"  worker: {stats.get('applied', 0)} applied, {stats.get('duplicates', 0)} duplicates "
        f"ignored, {stats.get('stale', 0)} stale ignored, {stats.get('dead_letters', 0)} dead "
        f"letters; {replacements} replacements followed")
    say(f"  reconciler: outcome {summary['outcome']}, {run.api_calls} API calls "
        f"({per_1000:.1f} per 1,000 appointments swept), {run.pages} pages, "
        f"{run.drifted} drifted, {run.repaired} repaired, drift by field "
        f"{summary['drift_by_field'] or 'none'}")
    say(f"  after reconcile: mismatches by field: {dict(sorted(after_fields.items())) or 'none'}")
    outside = len(sim.appointments) - compared
    if outside:
        say(f"  {outside} appointments ended over 24 h ago: outside the reconciler's window")
    say(f"  took {time.monotonic() - started:.1f} s")
    say(f"converged: {after_ok}/{compared} appointments match the provider")
    return 0 if after_ok == compared else 1
