"""A Zoom simulator written from Zoom's public documentation: the truth, a realistic webhook
workload signed as Zoom signs it, and its API (Server-to-Server OAuth, Meetings, start URLs).

    sim = ZoomSim(7, start=datetime(2026, 12, 1, 15, tzinfo=UTC), clock=ManualClock())
    deliveries = sim.play(200)                              # envelopes in true order
    report = await deliver(deliveries, url, signer=sim.signer(), chaos=Chaos())
    with serve_in_background(sim.asgi_app()) as root:       # API at f"{root}/v2",
        ...                                                 # token at f"{root}/oauth/token"
    sim.calls                                               # requests per route
    sim.add_user(status="inactive")                         # users: GET /v2/users, paged
    sim.start_url_valid(url)                                # would this start URL work now?

Credentials live on ``sim.account`` (``account_id``, ``client_id``, ``client_secret``,
``secret_token``). Deterministic under its seed: the same seed and ``start`` give byte-identical
deliveries, whatever the API serves meanwhile.
"""

from __future__ import annotations

from meetsync.providers.zoom.simulator.api import (
    LIST_MEETINGS,
    LIST_USERS,
    ROUTES,
    ApiConfig,
    build_app,
)
from meetsync.providers.zoom.simulator.model import Account, User, ZoomDelivery, ZoomModel
from meetsync.providers.zoom.simulator.signing import (
    expected_validation_reply,
    signature,
    zoom_headers,
)
from meetsync.providers.zoom.simulator.sim import ZoomSim, played_until

__all__ = [
    "LIST_MEETINGS",
    "LIST_USERS",
    "ROUTES",
    "Account",
    "ApiConfig",
    "User",
    "ZoomDelivery",
    "ZoomModel",
    "ZoomSim",
    "build_app",
    "expected_validation_reply",
    "played_until",
    "signature",
    "zoom_headers",
]
