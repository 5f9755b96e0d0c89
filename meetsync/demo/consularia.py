"""The Consularia Connect part of ``meetsync demo``: a poll-only provider.

Consularia sends no webhooks: the workload happens at the provider and the only way a change
reaches the mirror is a sweep of its API (the worker's reconcile cron, every
``CONSULARIA_POLL_INTERVAL_SECONDS``). The demo plays the first half of the workload's changes,
polls (one reconcile run, as the cron would), plays the rest, polls again, and compares the
mirror with Consularia's truth after each.

A list page lacks participants and ``updated_at`` (``SweepPage.complete`` False): a poll lists
the window, fetches in full only the appointments that are new or whose listing drifted, plus
``CONSULARIA_ROTATION_PER_SWEEP`` unchanged ones (those fetched longest ago first), plus the
ones the mirror holds that no page listed (deleted: 404). The report counts each per poll.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import meetsync.demo.steps as steps
from meetsync.demo.steps import ACCOUNT, Comparison, say
from meetsync.events import iso_utc, to_micros
from meetsync.providers.consularia import PROVIDER
from meetsync.providers.consularia.mapping import appointment_event, participants
from meetsync.providers.consularia.simulator import (
    DETAIL,
    LIST,
    ROUTES,
    ApiConfig,
    Change,
    ConsulariaSim,
    changes,
)
from meetsync.settings import Settings
from meetsync.store import Store
from meetsync.worker.reconciler import RunReport, snapshot_of

NAME = "consularia"
# The rate limit is undocumented: the simulated account allows 3,000 requests a minute and
# the demo's polls budget under it.
SIM_PER_MINUTE = 3000
BUDGET_PER_MINUTE = 2400
POLLS = 2
_FETCHED = re.compile(r"fetch: (\d+)/(\d+) (.+)$")


@dataclass
class ConsulariaWorkload:
    sim: ConsulariaSim
    appointments: int
    changes: int  # in the whole workload
    rest: Iterator[Change]  # what is left to play, one change per ``next``
    ends: dict[str, str] = field(default_factory=dict)  # each appointment's last known end
    gone: dict[str, str | None] = field(default_factory=dict)  # deleted: id → its end

    def advance(self, count: int | None = None) -> int:
        """Play ``count`` more changes (all that are left: None); how many were played."""
        played = 0
        for change in self.rest:
            played += 1
            if change.kind == "deleted":
                self.gone[change.appointment_id] = self.ends.get(change.appointment_id)
            else:
                self.ends[change.appointment_id] = iso_utc(self.sim.end_of(change.appointment_id))
            if count is not None and played >= count:
                break
        return played


def play(appointments: int, seed: int, end: datetime) -> ConsulariaWorkload:
    """A workload whose last change is at ``end``, its first half played."""
    probe = ConsulariaSim(seed, start=end)
    total = len(list(changes(probe, appointments)))
    sim = ConsulariaSim(seed, start=end - (probe.now - probe.begin))
    workload = ConsulariaWorkload(sim, appointments, total, changes(sim, appointments))
    say(f"playing a Consularia workload: {appointments} appointments (seed {seed}), no "
        f"webhooks: {total} changes at the provider, half of them before the first poll")
    workload.advance(total // 2)
    return workload


def environment(sim: ConsulariaSim, root: str) -> dict[str, str]:
    """The stack's CONSULARIA_* variables (``meetsync/providers/consularia/config.py``) for
    ``sim`` served at ``root``. The worker's own poll is a day away: the demo polls."""
    return {
        "CONSULARIA_API_URL": f"{root}/v1",
        "CONSULARIA_API_TOKEN": sim.token,
        "CONSULARIA_POLL_INTERVAL_SECONDS": "86400",
        "CONSULARIA_API_REQUESTS_PER_MINUTE": str(BUDGET_PER_MINUTE),
    }


def api_config() -> ApiConfig:
    return ApiConfig(rate_limit_per_minute=SIM_PER_MINUTE)


def truth(sim: ConsulariaSim) -> dict[str, dict[str, Any]]:
    """Every appointment Consularia holds, as ``GET /appointments/{id}/`` shows it."""
    stamp = to_micros(sim.now)
    found: dict[str, dict[str, Any]] = {}
    for appointment_id in sim.appointments:
        detail = sim.detail(appointment_id)
        found[appointment_id] = snapshot_of(appointment_event(
            detail, event_id="truth", type="truth", occurred_at=stamp, account=ACCOUNT,
            detail=True))
    return found


def compare(workload: ConsulariaWorkload, store: Store) -> Comparison:
    """The appointments' fields, and each matching one's participants (id, role, unique id,
    display name): a mismatch there counts under ``participants``."""
    found = steps.compare(truth(workload.sim), workload.gone, store, provider=NAME,
                               now=workload.sim.now, horizon=PROVIDER.horizon)
    for appointment_id in sorted(found.matching):
        detail = workload.sim.detail(appointment_id)
        if detail is None:
            continue  # deleted at the provider: compared as gone
        expected = [asdict(p) for p in sorted(participants(detail) or (), key=lambda p: p.id)]
        if store.participants(appointment_id, provider=NAME) != expected:
            found.matching.discard(appointment_id)
            found.fields.update(["participants"])
    return found


@dataclass
class Poll:
    run: RunReport
    lists: int
    details: int
    fetched: Counter[str]  # details by why: new or drifted, rotation, held but not listed

    def line(self, number: int) -> str:
        why = self.fetched
        return (f"  poll {number}: outcome {self.run.outcome}, {self.run.api_calls} API calls: "
                f"{self.lists} list pages, {self.details} details ("
                f"{why['listed and drifted']} new or drifted, {why['listed, rotated']} "
                f"rotation, {why['held, not listed']} held but not listed); "
                f"{self.run.drifted} drifted, {self.run.repaired} repaired, {self.run.gone} gone")


async def poll(workload: ConsulariaWorkload, settings: Settings,
               progress: Callable[[str], None]) -> Poll:
    """One reconcile run of the account at the provider's now: what the worker's cron does."""
    sim = workload.sim
    fetched: Counter[str] = Counter()

    def seen(line: str) -> None:
        found = _FETCHED.search(line)
        if found:
            fetched[found.group(3)] = int(found.group(2))
        progress(f"  consularia {line}")

    calls = Counter(sim.calls)
    run = await steps.reconcile_once(PROVIDER, settings, lambda: sim.now, seen)
    return Poll(run, sim.calls[LIST] - calls[LIST], sim.calls[DETAIL] - calls[DETAIL], fetched)


async def poll_and_report(
    workload: ConsulariaWorkload, settings: Settings, started: float,
    progress: Callable[[str], None],
) -> int:
    """Poll, play the rest, poll again, comparing before and after each; report; 0 when every
    appointment in the window matches after the last poll."""
    sim = workload.sim

    def measure(store: Store) -> Comparison:
        return compare(workload, store)

    polls: list[Poll] = []
    after = Comparison()
    # The last changes may touch only participants, which no listing shows: the rotation
    # fetches every listed appointment within ceil(listed / rotation) polls (the bound).
    rotation = settings.account(NAME, "default")
    per_poll = rotation.number("rotation_per_sweep") if rotation else 0
    bound, total, number = 0, POLLS, 0
    while number < total:
        number += 1
        if number == 2:
            played = workload.advance()
            say(f"  consularia: {played} more changes at the provider")
            # The last change is in: from this poll on, every listed appointment is fetched
            # within the bound.
            bound = -(-len(sim.appointments) // per_poll) if per_poll else 1
            total = max(POLLS, 1 + bound)
        elif number > POLLS:
            say(f"\nconsularia: poll {number} of {total} (the rotation's bound: every listed "
                f"appointment fetched within {bound} polls of {per_poll})")
        before = steps.compare_in(settings.db_path, lambda: sim.now, measure)
        say(f"\nconsularia: before poll {number}: {len(before.matching)}/{before.compared} "
            f"appointments match the provider; mismatches by field: {before.mismatches()}")
        polls.append(await poll(workload, settings, progress))
        say(polls[-1].line(number))
        after = steps.compare_in(settings.db_path, lambda: sim.now, measure)
        say(f"  after poll {number}: {len(after.matching)}/{after.compared} match; mismatches "
            f"by field: {after.mismatches()}")

    say("\nconsularia report")
    say(f"  no webhooks: {workload.changes} changes at the provider, {total} polls (reconcile "
        f"runs), {sum(p.run.api_calls for p in polls)} API calls")
    for number, done in enumerate(polls, 1):
        if done.run.errors:
            say(f"  poll {number} errors: {done.run.errors[:5]}")
    say(f"  after the last poll: mismatches by field: {after.mismatches()}")
    say(after.deleted_line())
    say(f"  participants compared for every appointment in the window, after {bound} polls "
        f"past the last change (the rotation's bound)")
    for line in steps.api_lines("Consularia", sim.calls, sim.statuses, ROUTES,
                                     workload.appointments, "appointments"):
        say(line)
    lines, code = after.closing("consularia", started)
    for line in lines:
        say(line)
    return code


__all__ = [
    "ConsulariaWorkload",
    "api_config",
    "compare",
    "environment",
    "play",
    "poll",
    "poll_and_report",
    "truth",
]
