"""The Consularia Connect simulator as one object: the truth (``model``) with its API and its
workload at hand. ``api`` and ``workload`` build on the model; this module, above them, joins
the three."""

from __future__ import annotations

from starlette.applications import Starlette

from meetsync.providers.consularia.simulator.api import ApiConfig, build_app
from meetsync.providers.consularia.simulator.model import Change, ConsulariaModel
from meetsync.providers.consularia.simulator.workload import play


class ConsulariaSim(ConsulariaModel):
    """A deterministic Consularia Connect under ``seed``: the truth, its log, an API over it."""

    def asgi_app(self, config: ApiConfig | None = None) -> Starlette:
        """The API over this truth (``serve_in_background(sim.asgi_app())``: base
        ``f"{root}/v1"``)."""
        return build_app(self, config)

    def play(self, n: int) -> list[Change]:
        """Run ``n`` appointment lifecycles, interleaved (``workload``)."""
        return play(self, n)
