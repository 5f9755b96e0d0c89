"""The steps every provider's part of the demo takes (``zoom``, ``avon``, ``consularia``): a
workload played to end now, chunked chaotic delivery with progress, the comparison of the mirror
with a provider's truth, one reconcile run of a configured account, report lines.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from meetsync.providers import Provider
from meetsync.settings import Settings
from meetsync.simulator import Chaos, deliver
from meetsync.simulator.delivery import Sendable, Signer
from meetsync.store import Store, open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler, RunReport, drift

ACCOUNT = "default"


def say(line: str) -> None:
    print(line, flush=True)


def wall_now() -> datetime:
    return datetime.now(UTC)


class Played(Protocol):
    """A simulator whose clock starts at ``begin`` and is ``now`` after a workload."""

    @property
    def begin(self) -> datetime: ...

    @property
    def now(self) -> datetime: ...


S = TypeVar("S", bound=Played)
R = TypeVar("R")


def played_until(make: Callable[[datetime], S], end: datetime, play: Callable[[S], R]
                 ) -> tuple[S, R]:
    """A simulator (``make(start)``) whose workload ends at ``end``, so its clock never runs
    ahead of the stack's real one. Plays twice: once to measure the span, then from ``end``
    minus it (a seed plays the same lifecycles from any start)."""
    probe = make(end)
    play(probe)
    sim = make(end - (probe.now - probe.begin))
    return sim, play(sim)


D = TypeVar("D", bound=Sendable)


async def deliver_chunked(
    deliveries: Sequence[D], url: str, *, signer: Signer[D], chaos: Chaos, seed: int,
    label: str, progress: Callable[[str], None],
) -> dict[str, int]:
    """POST ``deliveries`` to ``url`` in tenths, under ``chaos``, reporting progress."""
    totals: Counter[str] = Counter()
    chunk = max(1, len(deliveries) // 10)
    t0 = time.monotonic()
    for n, start in enumerate(range(0, len(deliveries), chunk)):
        part = await deliver(deliveries[start : start + chunk], url, signer=signer, chaos=chaos,
                             seed=seed + n)
        totals.update(sent=part.sent, dropped=part.dropped, duplicated=part.duplicated,
                      accepted=part.accepted, failed=part.failed,
                      rejected=sum(part.rejected.values()))
        done = min(start + chunk, len(deliveries))
        rate = totals["sent"] / max(time.monotonic() - t0, 1e-9)
        progress(f"  {label}: delivered {done}/{len(deliveries)} webhooks ({rate:,.0f} POST/s)")
    return dict(totals)


def webhooks_line(delivered: Mapping[str, int]) -> str:
    return (f"  webhooks: {delivered.get('sent', 0)} sent, {delivered.get('dropped', 0)} "
            f"dropped, {delivered.get('duplicated', 0)} duplicated, "
            f"{delivered.get('accepted', 0)} accepted, "
            f"{delivered.get('rejected', 0) + delivered.get('failed', 0)} refused or failed")


def worker_line(stats: Mapping[str, int], api_calls: int) -> str:
    """The worker's counters for a provider whose webhooks are hints (refetches)."""
    return (f"  worker: {stats.get('applied', 0)} applied, {stats.get('duplicates', 0)} "
            f"duplicates ignored, {stats.get('stale', 0)} stale ignored, "
            f"{stats.get('dead_letters', 0)} dead letters; {stats.get('hints', 0)} hints queued "
            f"a refetch ({stats.get('hints_folded', 0)} folded into one waiting), {api_calls} "
            "API calls before the reconcile")


def reconciler_line(run: RunReport, unit: str) -> str:
    summary = run.summary()
    per_1000 = 1000 * run.api_calls / max(run.appointments_seen, 1)
    return (f"  reconciler: outcome {summary['outcome']}, {run.api_calls} API calls "
            f"({per_1000:.1f} per 1,000 {unit} swept), {run.pages} pages, "
            f"{run.drifted} drifted, {run.repaired} repaired, {run.gone} gone, drift by field "
            f"{summary['drift_by_field'] or 'none'}")


def api_lines(name: str, calls: Counter[str], statuses: Counter[tuple[str, int]],
              routes: Iterable[str], played: int, unit: str) -> list[str]:
    """A simulated API's calls, in all and per route, per 1,000 ``unit`` played."""
    total = sum(calls.values())
    limited = sum(n for (_, status), n in statuses.items() if status == 429)
    lines = [f"  {name} API: {total} calls ({1000 * total / max(played, 1):,.1f} per 1,000 "
             f"{unit} played), {limited} answered 429"]
    for route in routes:
        if calls[route]:
            lines.append(f"    {route}: {calls[route]} "
                         f"({1000 * calls[route] / max(played, 1):,.1f} per 1,000)")
    return lines


@dataclass
class Comparison:
    """How the mirror stands against a provider's truth, in the reconciler's window."""

    matching: set[str] = field(default_factory=set)
    fields: Counter[str] = field(default_factory=Counter)
    compared: int = 0
    outside: int = 0
    deleted: int = 0  # deleted appointments in the window
    deleted_unknown: int = 0  # of which the mirror never heard (it serves nothing either)

    def mismatches(self) -> str:
        return str(dict(sorted(self.fields.items())) or "none")

    def deleted_line(self) -> str:
        return (f"  deleted: {self.deleted} in the window, "
                f"{self.deleted - self.deleted_unknown} gone from the mirror, "
                f"{self.deleted_unknown} never reached it")

    def closing(self, provider: str, started: float) -> tuple[list[str], int]:
        """A provider report's last lines (what the window left out, the time, whether it
        converged) and its exit code."""
        lines = [f"  {self.outside} appointments ended over 24 h ago: outside the reconciler's "
                 "window"] if self.outside else []
        lines += [f"  took {time.monotonic() - started:.1f} s",
                  f"converged: {len(self.matching)}/{self.compared} {provider} appointments "
                  "match the provider"]
        return lines, 0 if len(self.matching) == self.compared else 1


def compare(
    truth: Mapping[str, dict[str, Any]], gone: Mapping[str, str | None], store: Store, *,
    provider: str, now: datetime, horizon: timedelta, skip: tuple[str, ...] = (),
) -> Comparison:
    """Appointments in the window (ending after ``now - horizon``) that match ``truth`` (rows
    shaped as ``Store.snapshots``'), and those deleted at the provider (``gone``: id → end)
    that the mirror holds as ``deleted`` with no current meeting, or never heard of."""
    from meetsync.events import iso_utc

    cutoff = iso_utc(now - horizon)
    found = Comparison()
    in_window = {k: v for k, v in truth.items() if v["end_at"] is None or v["end_at"] > cutoff}
    deleted = [k for k, end in gone.items() if end is None or end > cutoff]
    found.outside = len(truth) - len(in_window) + len(gone) - len(deleted)
    mirror = store.snapshots([*in_window, *deleted], provider=provider)
    for appointment_id, expected in in_window.items():
        fields = drift(expected, mirror.get(appointment_id), skip=skip)
        found.fields.update(fields)
        if not fields:
            found.matching.add(appointment_id)
    for appointment_id in deleted:
        held = mirror.get(appointment_id)
        if held is None:
            found.deleted_unknown += 1
            found.matching.add(appointment_id)
        elif held["status"] == "deleted" and held["meeting_id"] is None:  # reconciler's _gone
            found.matching.add(appointment_id)
        else:
            found.fields.update(["deleted"])
    found.deleted = len(deleted)
    found.compared = len(in_window) + len(deleted)
    return found


def compare_in(db_path: str, clock: Callable[[], datetime],
               measure: Callable[[Store], Comparison]) -> Comparison:
    """``measure`` on a store opened (and closed) at ``db_path`` with ``clock``."""
    store = open_store(db_path, clock=clock)
    try:
        return measure(store)
    finally:
        store.close()


async def reconcile_once(
    provider: Provider, settings: Settings, clock: Callable[[], datetime],
    progress: Callable[[str], None],
) -> RunReport:
    """One reconcile run of ``provider``'s default account, as the worker's cron runs it: the
    client from the settings (``Provider.api``), the provider's horizon."""
    account = settings.account(provider.name, ACCOUNT)
    assert account is not None, f"the demo configures a default {provider.name} account"
    api = provider.api(account, provider.budget(account))
    assert api is not None, f"the demo configures {provider.name}'s API credentials"
    thread = StoreThread(lambda: open_store(settings.db_path, clock=clock))
    try:
        return await Reconciler(api, thread, horizon=provider.horizon, clock=clock,
                                progress=progress).run()
    finally:
        await api.aclose()
        thread.close()


__all__ = [
    "ACCOUNT",
    "Comparison",
    "api_lines",
    "compare",
    "compare_in",
    "deliver_chunked",
    "played_until",
    "reconcile_once",
    "reconciler_line",
    "say",
    "wall_now",
    "webhooks_line",
    "worker_line",
]
