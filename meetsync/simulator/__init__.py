"""A SavvyCal simulator: the provider's truth, a realistic webhook workload, and its API.

    sim = ProviderSim(seed=7, start=datetime(2025, 3, 1, 15, tzinfo=UTC))
    deliveries = sim.play(200)                       # envelopes in true order
    report = await deliver(deliveries, url, scheme="native", secret="s", chaos=Chaos())
    with serve_in_background(sim.asgi_app()) as root:  # API at f"{root}/v1"
        ...

Deterministic under its seeds: the same seed and ``start`` give byte-identical deliveries.
"""

from __future__ import annotations

from meetsync.simulator.clock import ManualClock
from meetsync.simulator.delivery import Chaos, DeliveryReport, deliver
from meetsync.simulator.faults import Faults
from meetsync.simulator.provider import Delivery, ProviderSim, played_until
from meetsync.simulator.serve import serve_in_background
from meetsync.simulator.signing import Scheme, sign

__all__ = [
    "Chaos",
    "Delivery",
    "DeliveryReport",
    "Faults",
    "ManualClock",
    "ProviderSim",
    "Scheme",
    "deliver",
    "played_until",
    "serve_in_background",
    "sign",
]
