"""The Avon Health simulator as one object: the truth (``model``) with its API and its workload
at hand. ``api`` and ``workload`` build on the model; this module, above them, joins the three."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from meetsync.providers.avon.simulator.api import ApiConfig, build_app
from meetsync.providers.avon.simulator.model import AvonDelivery, AvonModel
from meetsync.providers.avon.simulator.workload import play


class AvonSim(AvonModel):
    """A deterministic Avon Health under ``seed``: the truth, its deliveries, an API over it."""

    def asgi_app(self, **config: Any) -> Starlette:
        """The API over this truth (``api.ApiConfig`` fields as keywords)."""
        return build_app(self, ApiConfig(**config))

    def play(self, n_appointments: int) -> list[AvonDelivery]:
        """``n_appointments`` lifecycles, interleaved (``workload``)."""
        return play(self, n_appointments)
