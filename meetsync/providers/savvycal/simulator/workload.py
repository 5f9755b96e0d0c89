"""A realistic workload: per-appointment lifecycles, interleaved so many appointments mix.

Per appointment (rates are rough): booked with a pending meeting (a few have no conferencing or
a skipped meeting; ~10 % Google Meet, which has no host URL) → ~15 % a failed creation, most
retried later → meeting created → ~15 % host URL rotated → ~25 % rescheduled: a created meeting
goes update_pending then created again, or (~30 % of reschedules) the appointment moves to
another host and the meeting is replaced by a new id (~80 % naming the old id in
``previous_attributes``; ~10 % ``replace_failed``) → ~12 % canceled: cancel_pending → canceled.
"""

from __future__ import annotations

from collections.abc import Iterator

from meetsync.providers.savvycal.simulator.model import Delivery, SavvyCalModel
from meetsync.simulator.play import interleave


def lifecycle(sim: SavvyCalModel) -> Iterator[Delivery]:
    """One appointment's changes in true order; each ``next`` makes one change."""
    rng = sim.rng
    roll = rng.random()
    if roll < 0.05:
        booked = sim.book(conferencing_provider=None if roll < 0.02 else "zoom_admin", skipped=True)
        yield booked
        if rng.random() < 0.2:
            yield sim.cancel(booked.appointment_id)
        return
    conferencing = "google_meet" if rng.random() < 0.1 else "zoom_admin"
    booked = sim.book(conferencing_provider=conferencing)
    appointment_id = booked.appointment_id
    yield booked
    if rng.random() < 0.15:
        yield sim.fail_meeting(appointment_id)
        if rng.random() < 0.4:
            yield from _maybe_cancel(sim, appointment_id, 0.3)
            return
    yield sim.create_meeting(appointment_id)
    if rng.random() < 0.15:
        yield sim.rotate_host_url(appointment_id)
    if rng.random() < 0.25:
        yield sim.reschedule(appointment_id)
        if rng.random() < 0.3:
            failed = rng.random() < 0.1
            yield sim.replace_meeting(
                appointment_id, announce_previous=rng.random() < 0.8, failed=failed
            )
            if not failed or rng.random() < 0.6:
                yield sim.create_meeting(appointment_id)
        else:
            yield sim.create_meeting(appointment_id)
    yield from _maybe_cancel(sim, appointment_id, 0.12)


def _maybe_cancel(sim: SavvyCalModel, appointment_id: str, rate: float) -> Iterator[Delivery]:
    if sim.rng.random() < rate:
        yield sim.cancel(appointment_id)
        yield sim.confirm_cancel(appointment_id)


def play(sim: SavvyCalModel, n_appointments: int) -> list[Delivery]:
    """Run ``n_appointments`` lifecycles, picking at random which one moves next."""
    return list(interleave(sim.rng, lambda: lifecycle(sim), n_appointments))
