"""The SavvyCal simulator as one object: the truth (``model``) with its API and its workload at
hand. ``api`` and ``workload`` build on the model; this module, above them, joins the three."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette

from meetsync.providers.savvycal.simulator.api import build_app
from meetsync.providers.savvycal.simulator.model import Delivery, SavvyCalModel
from meetsync.providers.savvycal.simulator.workload import play
from meetsync.simulator.clock import Clock


class SavvyCalSim(SavvyCalModel):
    """A deterministic SavvyCal under ``seed``: the truth, its change log, and an API over it."""

    def asgi_app(
        self, *, rate_limit_per_minute: int = 300, clock: Clock | None = None
    ) -> Starlette:
        """The provider API over this truth (see ``api``)."""
        return build_app(self, rate_limit_per_minute=rate_limit_per_minute, clock=clock)

    def play(self, n_appointments: int) -> list[Delivery]:
        """Book ``n_appointments`` and play their interleaved lifecycles to the end."""
        return play(self, n_appointments)


def played_until(
    end: datetime, seed: int, play: Callable[[SavvyCalSim], list[Delivery]], **options: Any
) -> tuple[SavvyCalSim, list[Delivery]]:
    """A provider whose workload (``play``) ends at ``end``: its clock never runs ahead of a
    receiver's real one, which would re-date its events to their receipt (``events.received``).

    Plays twice: once to measure the workload's span, then from ``end`` minus that span (the
    same seed plays the same lifecycles from any start).
    """
    probe = SavvyCalSim(seed, start=end, **options)
    play(probe)
    sim = SavvyCalSim(seed, start=end - (probe.now - probe.start), **options)
    return sim, play(sim)
