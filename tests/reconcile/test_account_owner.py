"""Refetches and sweeps use the account that owns an appointment (docs/configuration.md,
"Precedence and rules"): two SavvyCal accounts, each its own simulated API, one mirror. A
refetch asked under another account goes to the owner's API; another account's sweep that lists
the same id writes nothing to it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from meetsync.providers.http import ClientOptions
from meetsync.providers.savvycal import PROVIDER
from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.settings import Account, Settings
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.main import ConnectedAccount, WorkerContext, refetch_appointment
from meetsync.worker.reconciler import Reconciler
from tests.reconcile.conftest import START, UNLIMITED, Edge, events_of


@dataclass
class Side:
    """One account: its simulated provider, the edge to it, its client."""

    sim: SavvyCalSim
    edge: Edge
    client: SavvyCalClient


@dataclass
class World:
    acme: Side
    beta: Side
    store: StoreThread
    appointment_id: str


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    sides = {}
    for seed, name in ((5, "acme"), (6, "beta")):
        sim = SavvyCalSim(seed, start=START)
        edge = Edge(sim)
        sides[name] = Side(sim, edge, SavvyCalClient(
            "http://sim/v1", sim.token, budget=RequestBudget(UNLIMITED),
            options=ClientOptions(transport=edge), account=name))
    acme, beta = sides["acme"], sides["beta"]
    booked = acme.sim.book(start_at=acme.sim.start + timedelta(hours=2))
    created = acme.sim.create_meeting(booked.appointment_id)
    appointment_id = booked.appointment_id
    # beta's API knows the same id: canceled there, with another meeting.
    theirs = copy.deepcopy(acme.sim.appointments[appointment_id])
    theirs["status"] = "canceled"
    theirs["meeting"] = {**theirs["meeting"], "id": "amtg_beta", "join_url": "https://j/beta"}
    beta.sim.appointments[appointment_id] = theirs
    store = StoreThread(lambda: open_store(tmp_path / "mirror.db", clock=lambda: acme.sim.now))
    await store.run(lambda s: s.apply(
        [replace(e, account="acme") for e in events_of([booked, created])]))
    yield World(acme, beta, store, appointment_id)
    for side in (acme, beta):
        await side.client.aclose()
    store.close()


async def held(world: World) -> tuple[Any, ...]:
    row = await world.store.run(lambda s: s.appointment(world.appointment_id, provider="savvycal"))
    meeting = await world.store.run(
        lambda s: s.current_meeting(world.appointment_id, provider="savvycal"))
    assert row is not None and meeting is not None
    return row["account"], row["status"], meeting["id"], meeting["join_url"]


async def test_a_refetch_asked_under_another_account_asks_the_owners_api(world: World) -> None:
    before = await held(world)
    assert before[:2] == ("acme", "scheduled")
    connections = {
        ("savvycal", name): ConnectedAccount(PROVIDER, Account("savvycal", name),
                                             side.client.budget, side.client)
        for name, side in (("acme", world.acme), ("beta", world.beta))}
    state = WorkerContext(Settings(), redis=None, store=world.store,  # type: ignore[arg-type]
                          applier=None, applier_task=None,  # type: ignore[arg-type]
                          connections=connections)
    ctx = {"meetsync": state, "job_id": "refetch:appt", "job_try": 1}
    assert await refetch_appointment(ctx, "savvycal", "beta", world.appointment_id) == "applied"
    assert world.beta.edge.requests == []
    assert len(world.acme.edge.requests) == 1
    assert await held(world) == before


async def test_another_accounts_sweep_leaves_the_appointment_alone(world: World) -> None:
    before = await held(world)
    report = await Reconciler(world.beta.client, world.store,
                              clock=lambda: world.acme.sim.now).run()
    assert report.outcome == "success"
    assert report.drifted == 0 and report.repaired == 0
    assert await held(world) == before
    # The owner's own sweep finds nothing to repair either.
    assert (await Reconciler(world.acme.client, world.store,
                             clock=lambda: world.acme.sim.now).run()).drifted == 0
