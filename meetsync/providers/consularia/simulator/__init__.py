"""A Consularia Connect simulator written from its OpenAPI excerpt (docs/providers.md): the
truth, a workload that changes it over simulated time, and its API (token auth, paged
appointments).

    sim = ConsulariaSim(7, start=datetime(2026, 12, 1, 15, tzinfo=UTC), clock=ManualClock())
    changes = sim.play(200)                         # the truth's changes, in true order
    with serve_in_background(sim.asgi_app()) as root:   # API at f"{root}/v1"
        ...
    sim.calls                                       # requests per route (ROUTES)
    sim.faults = Faults(error_rate=0.1)             # 500s / 429s / latency
    sim.churn_per_page = 2                          # rows created/deleted between list pages

Deterministic under its seed: the same seed and ``start`` play the same changes, whatever the
API serves meanwhile (the API's churn draws from its own generator).
"""

from __future__ import annotations

from meetsync.providers.consularia.simulator.api import DETAIL, LIST, ROUTES, ApiConfig, build_app
from meetsync.providers.consularia.simulator.model import STATUSES, Change, ConsulariaModel
from meetsync.providers.consularia.simulator.sim import ConsulariaSim
from meetsync.providers.consularia.simulator.workload import changes, lifecycle, play

__all__ = [
    "DETAIL",
    "LIST",
    "ROUTES",
    "STATUSES",
    "ApiConfig",
    "Change",
    "ConsulariaModel",
    "ConsulariaSim",
    "build_app",
    "changes",
    "lifecycle",
    "play",
]
