"""A refetch turns the provider's word on one appointment into the right event (404: deleted)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq import Retry

from meetsync.events import to_micros
from meetsync.providers.savvycal import PROVIDER, appointment_event
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.settings import Account, Settings
from meetsync.worker.main import ConnectedAccount, WorkerContext, refetch, refetch_appointment

MakeHarness = Callable[..., Any]


def created(sim: SavvyCalSim) -> str:
    booked = sim.book(start_at=sim.start + timedelta(hours=2))
    sim.create_meeting(booked.appointment_id)
    return booked.appointment_id


async def test_refetch_gives_the_providers_current_snapshot(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    appointment_id = created(sim)
    sim.rotate_host_url(appointment_id)
    h = harness()
    before = to_micros(datetime.now(UTC))
    event = await refetch(h.client, appointment_id, "refetch:job:1")
    expected = appointment_event(sim.appointments[appointment_id], event_id="refetch:job:1",
                                 type="refetch", occurred_at=event.occurred_at)
    assert event == expected
    assert event.meeting is not None and event.meeting.host_url is not None
    assert event.occurred_at >= before  # stamped when fetched
    assert len(h.edge.requests) == 1


async def test_refetch_of_an_unknown_appointment_is_a_deletion(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    appointment_id = created(sim)
    del sim.appointments[appointment_id]
    event = await refetch(harness().client, appointment_id, "refetch:job:1")
    assert (event.appointment_id, event.appointment_status, event.type) == (
        appointment_id, "deleted", "refetch.gone")
    assert event.meeting is None


def context(h: Any) -> dict[str, Any]:
    account = Account("savvycal", "default")
    connection = ConnectedAccount(PROVIDER, account, h.client.budget, h.client)
    state = WorkerContext(Settings(), redis=None, store=h.store, applier=None,  # type: ignore[arg-type]
                          applier_task=None,  # type: ignore[arg-type]
                          connections={account.key: connection})
    return {"meetsync": state, "job_id": "refetch:appt", "job_try": 1}


async def test_the_refetch_job_repairs_the_mirror(sim: SavvyCalSim, harness: MakeHarness) -> None:
    booked = sim.book(start_at=sim.start + timedelta(hours=2))
    sim.create_meeting(booked.appointment_id)  # lost
    h = harness()
    h.apply([booked])
    assert await refetch_appointment(
        context(h), "savvycal", "default", booked.appointment_id) == "applied"
    h.assert_mirror_matches()


async def test_a_refetch_job_queued_by_the_previous_release_still_runs(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    """Jobs queued before several providers name only the appointment: SavvyCal's default."""
    booked = sim.book(start_at=sim.start + timedelta(hours=2))
    sim.create_meeting(booked.appointment_id)
    h = harness()
    assert await refetch_appointment(context(h), booked.appointment_id) == "applied"
    h.assert_mirror_matches()


async def test_a_refetch_for_an_account_without_credentials_is_skipped(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    h = harness()
    outcome = await refetch_appointment(context(h), "savvycal", "other", created(sim))
    assert outcome == "skipped: no API credentials for savvycal account other"
    assert h.edge.requests == []


async def test_the_refetch_job_retries_after_what_the_provider_said(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    appointment_id = created(sim)
    h = harness(faults=lambda _request, _n: 429, max_attempts=2)
    with pytest.raises(Retry) as caught:
        await refetch_appointment(context(h), "savvycal", "default", appointment_id)
    assert caught.value.defer_score == 2000  # the edge's retry-after, in ms
    assert h.delays == [2.0]


async def test_a_second_refetch_of_the_same_appointment_is_applied_too(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    """Every refetch job of an appointment has the same arq id and try: the event id must still
    differ, or the inbox drops every refetch after the first as a duplicate."""
    booked = sim.book(start_at=sim.start + timedelta(hours=2))
    sim.create_meeting(booked.appointment_id)
    h = harness()
    assert await refetch_appointment(
        context(h), "savvycal", "default", booked.appointment_id) == "applied"
    sim.rotate_host_url(booked.appointment_id)  # lost
    assert await refetch_appointment(
        context(h), "savvycal", "default", booked.appointment_id) == "applied"
    h.assert_mirror_matches()


async def test_a_refetch_of_an_appointment_nobody_knows_writes_nothing(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    """A hint (an unsigned delivery may be forged) for a made-up id costs one fetch: the
    provider does not know it either, and no row is left behind."""
    h = harness()
    outcome = await refetch_appointment(context(h), "savvycal", "default", "appt_madeup00000")
    assert outcome == "unknown"
    assert len(h.edge.requests) == 1
    assert await h.store.run(lambda s: s.appointment("appt_madeup00000")) is None
