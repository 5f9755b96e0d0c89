"""A realistic workload: per-appointment lifecycles, interleaved so many appointments mix.

Per appointment (rates are rough): created (~80 % video calls) → ~30 % confirmed → none, one or
two of: rescheduled (only those that do not run now), a new video call, a switch between video
and in person → ~10 % cancelled, else ~45 % run now: started, mostly completed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from meetsync.providers.avon.simulator.model import AvonDelivery, AvonModel
from meetsync.simulator.play import interleave


def lifecycle(sim: AvonModel) -> Iterator[AvonDelivery]:
    """One appointment's changes in true order; each ``next`` makes one change."""
    rng = sim.rng
    runs = rng.random() < 0.45
    start = sim.now + timedelta(minutes=rng.randint(-10, 15)) if runs else None
    created = sim.create(video=rng.random() < 0.8, start_time=start)
    appointment_id = created.appointment_id
    yield created
    if rng.random() < 0.3:
        yield sim.confirm(appointment_id)
    for _ in range(rng.choice((0, 0, 1, 2))):
        change = rng.random()
        if change < 0.5 and not runs:
            yield sim.reschedule(appointment_id)
        elif change < 0.8 and sim.appointments[appointment_id]["interaction_type"] == \
                "video_call":
            yield sim.new_video_call(appointment_id)
        else:
            yield sim.switch(appointment_id)
    if rng.random() < 0.1:
        yield sim.cancel(appointment_id)
        return
    if not runs:
        return
    yield sim.start(appointment_id)
    if rng.random() < 0.9:
        yield sim.complete(appointment_id)


def play(sim: AvonModel, n_appointments: int) -> list[AvonDelivery]:
    """Run ``n_appointments`` lifecycles, picking at random which one moves next."""
    return list(interleave(sim.rng, lambda: lifecycle(sim), n_appointments))
