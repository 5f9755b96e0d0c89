"""A realistic workload: per-meeting lifecycles, interleaved so many meetings mix.

Per meeting (rates are rough): created (~15 % recurring, type 8) → ~35 % updated once or twice
(start_time, duration, topic, passcode: one or two at a time) → ~8 % deleted before they run →
~45 % run now: started, then mostly ended (a few stay live; a few recurring ones run a second
instance, with a new uuid) → ~6 % of the rest deleted afterwards.

Meetings that run are scheduled around the simulated now, the others anywhere in the next days
(or, a few, in the past).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from meetsync.providers.zoom.simulator.model import ZoomDelivery, ZoomModel
from meetsync.simulator.play import interleave


def lifecycle(sim: ZoomModel) -> Iterator[ZoomDelivery]:
    """One meeting's changes in true order; each ``next`` makes one change."""
    rng = sim.rng
    account = rng.choice(sim.accounts)
    runs = rng.random() < 0.45
    start_time = sim.now + timedelta(minutes=rng.randint(-10, 15)) if runs else None
    created = sim.create(account=account, start_time=start_time, recurring=rng.random() < 0.15)
    meeting_id = created.meeting_id
    assert meeting_id is not None
    yield created
    if rng.random() < 0.35:
        for _ in range(rng.choice((1, 1, 2))):
            yield sim.update(meeting_id)
    if not runs:
        if rng.random() < 0.08:
            yield sim.delete(meeting_id)
        return
    yield sim.start(meeting_id)
    if rng.random() < 0.1:
        return  # still live
    yield sim.end(meeting_id)
    if sim.meetings[meeting_id]["type"] == 8 and rng.random() < 0.3:
        yield sim.start(meeting_id)
        yield sim.end(meeting_id)
    if rng.random() < 0.06:
        yield sim.delete(meeting_id)


def play(sim: ZoomModel, n_meetings: int) -> list[ZoomDelivery]:
    """Run ``n_meetings`` lifecycles, picking at random which one moves next."""
    return list(interleave(sim.rng, lambda: lifecycle(sim), n_meetings))
