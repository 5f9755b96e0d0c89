"""A realistic workload: per-appointment lifecycles, interleaved so many appointments mix.

Per appointment (rates are rough): created (scheduled, a moment from two hours ago to two weeks
ahead) → ~40 % rescheduled or retitled once or twice → ~50 % see participant changes (added,
removed, renamed, role changed: one to three) → ~10 % cancelled → of the rest, those whose start
has passed go active, then mostly completed → ~6 % deleted (before or after they run).
"""

from __future__ import annotations

from collections.abc import Iterator

from meetsync.providers.consularia.simulator.model import Change, ConsulariaModel
from meetsync.simulator.play import interleave


def lifecycle(sim: ConsulariaModel) -> Iterator[Change]:
    """One appointment's changes in true order; each ``next`` makes one change."""
    rng = sim.rng
    created = sim.create()
    appointment_id = created.appointment_id
    yield created
    if rng.random() < 0.4:
        for _ in range(rng.choice((1, 1, 2))):
            yield sim.reschedule(appointment_id) if rng.random() < 0.8 else sim.retitle(
                appointment_id)
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            change = rng.choice((sim.add_participant, sim.remove_participant,
                                 sim.rename_participant, sim.change_role))
            yield change(appointment_id)
    if rng.random() < 0.1:
        yield sim.set_status(appointment_id, "cancelled")
    elif sim.appointments[appointment_id]["start_date_time"] <= sim.now:
        yield sim.set_status(appointment_id, "active")
        if rng.random() < 0.85:
            yield sim.set_status(appointment_id, "completed")
    if rng.random() < 0.06:
        yield sim.delete(appointment_id)


def changes(sim: ConsulariaModel, n_appointments: int) -> Iterator[Change]:
    """``n_appointments`` lifecycles, picking at random which one moves next; each ``next``
    makes one change (a caller may stop partway, look at the provider, then go on)."""
    return interleave(sim.rng, lambda: lifecycle(sim), n_appointments)


def play(sim: ConsulariaModel, n_appointments: int) -> list[Change]:
    """Run ``n_appointments`` lifecycles, picking at random which one moves next."""
    return list(changes(sim, n_appointments))
