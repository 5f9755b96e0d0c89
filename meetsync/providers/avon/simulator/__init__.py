"""An Avon Health simulator written from Avon's public documentation: the truth, a realistic
webhook workload sent unsigned as Avon sends it, and its API (token, appointments).

    sim = AvonSim(7, start=datetime(2026, 12, 1, 15, tzinfo=UTC), clock=ManualClock())
    deliveries = sim.play(200)                              # envelopes in true order
    report = await deliver(deliveries, url, signer=sim.signer(), chaos=Chaos())
    with serve_in_background(sim.asgi_app()) as root:       # AVON_API_URL = root
        ...
    sim.calls                                               # requests per route

Credentials live on ``sim.credentials`` (``client_id``, ``client_secret``, ``user_jwt``,
``account``). Deterministic under its seed: the same seed and ``start`` give byte-identical
deliveries, whatever the API serves meanwhile.
"""

from __future__ import annotations

from meetsync.providers.avon.simulator.api import ROUTES, ApiConfig, build_app
from meetsync.providers.avon.simulator.model import (
    ENVELOPES,
    AvonDelivery,
    AvonModel,
    Credentials,
    unsigned_headers,
)
from meetsync.providers.avon.simulator.sim import AvonSim

__all__ = [
    "ENVELOPES",
    "ROUTES",
    "ApiConfig",
    "AvonDelivery",
    "AvonModel",
    "AvonSim",
    "Credentials",
    "build_app",
    "unsigned_headers",
]
