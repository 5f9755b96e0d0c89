"""A SavvyCal simulator: the provider's truth, a realistic webhook workload, and its API.

    sim = SavvyCalSim(seed=7, start=datetime(2025, 3, 1, 15, tzinfo=UTC))
    deliveries = sim.play(200)                       # envelopes in true order
    report = await deliver(deliveries, url, signer=signer("native", "s"), chaos=Chaos())
    with serve_in_background(sim.asgi_app()) as root:  # API at f"{root}/v1"
        ...

Deterministic under its seeds: the same seed and ``start`` give byte-identical deliveries.
``deliver``, ``Chaos`` and ``serve_in_background`` are the shared kit's (``meetsync.simulator``).
"""

from __future__ import annotations

from meetsync.providers.savvycal.simulator.model import Delivery, SavvyCalModel
from meetsync.providers.savvycal.simulator.signing import Scheme, sign, signer
from meetsync.providers.savvycal.simulator.sim import SavvyCalSim, played_until

__all__ = [
    "Delivery",
    "SavvyCalModel",
    "SavvyCalSim",
    "Scheme",
    "played_until",
    "sign",
    "signer",
]
