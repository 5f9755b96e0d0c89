"""The Zoom simulator as one object: the truth (``model``) with its API and its workload at
hand. ``api`` and ``workload`` build on the model; this module, above them, joins the three."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette

from meetsync.providers.zoom.simulator.api import ApiConfig, build_app
from meetsync.providers.zoom.simulator.model import ZoomDelivery, ZoomModel
from meetsync.providers.zoom.simulator.workload import play


class ZoomSim(ZoomModel):
    """A deterministic Zoom under ``seed``: the truth, its change log, and an API over it."""

    def asgi_app(
        self,
        *,
        per_second_limit: int = 30,
        daily_limit: int | None = None,
        token_ttl_seconds: int = 3600,
        start_url_ttl_seconds: int = 7200,
    ) -> Starlette:
        """Zoom's API over this truth (see ``api``)."""
        config = ApiConfig(per_second_limit, daily_limit, token_ttl_seconds, start_url_ttl_seconds)
        return build_app(self, config)

    def play(self, n_meetings: int) -> list[ZoomDelivery]:
        """Create ``n_meetings`` and play their interleaved lifecycles to the end."""
        return play(self, n_meetings)


def played_until(
    end: datetime, seed: int, play: Callable[[ZoomSim], list[ZoomDelivery]], **options: Any
) -> tuple[ZoomSim, list[ZoomDelivery]]:
    """A Zoom whose workload (``play``) ends at ``end``, so its clock never runs ahead of a
    receiver's real one. Plays twice: once to measure the span, then from ``end`` minus it."""
    probe = ZoomSim(seed, start=end, **options)
    play(probe)
    sim = ZoomSim(seed, start=end - (probe.now - probe.begin), **options)
    return sim, play(sim)
