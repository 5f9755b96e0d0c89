"""The kit every provider simulator is built from, provider-neutral: a hand-driven clock,
injected API faults, a rate limiter, the workload's play loop, delivery under chaos, and serving
an API in the background. Each provider's simulator lives in its package
(``meetsync.providers.<name>.simulator``).

    report = await deliver(deliveries, url, signer=sim.signer(), chaos=Chaos())
    with serve_in_background(sim.asgi_app()) as root:
        ...
"""

from __future__ import annotations

from meetsync.simulator.clock import Clock, ManualClock
from meetsync.simulator.delivery import Chaos, DeliveryReport, deliver
from meetsync.simulator.faults import Faults
from meetsync.simulator.play import interleave
from meetsync.simulator.ratelimit import RateLimiter
from meetsync.simulator.serve import serve_in_background

__all__ = [
    "Chaos",
    "Clock",
    "DeliveryReport",
    "Faults",
    "ManualClock",
    "RateLimiter",
    "deliver",
    "interleave",
    "serve_in_background",
]
