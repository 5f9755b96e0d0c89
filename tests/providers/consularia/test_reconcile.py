"""A reconciler sweeping the simulated Consularia API brings the mirror to the truth: new,
rescheduled, canceled and deleted appointments, listed incomplete and fetched when drifted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meetsync.providers.consularia import ConsulariaClient
from meetsync.providers.consularia.simulator import DETAIL, ApiConfig, ConsulariaSim
from meetsync.providers.http import RequestBudget
from meetsync.simulator.serve import serve_in_background
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.reconciler import Reconciler

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[ConsulariaSim, ConsulariaClient,
                                                       StoreThread]]:
    sim = ConsulariaSim(21, start=START)
    sim.play(50)
    store = StoreThread(lambda: open_store(tmp_path / "m.db", clock=lambda: sim.now))
    with serve_in_background(sim.asgi_app(ApiConfig(page_size=8))) as root:
        api = ConsulariaClient(api_token=sim.token, api_url=f"{root}/v1",
                               budget=RequestBudget(100_000), rotation=0)
        yield sim, api, store
        await api.aclose()
    store.close()


async def mirror_matches(sim: ConsulariaSim, store: StoreThread) -> None:
    held = await store.run(lambda s: s.snapshots(list(sim.appointments), provider="consularia"))
    for appointment_id, truth in sim.appointments.items():
        row = held[appointment_id]
        status = "canceled" if truth["status"] == "cancelled" else truth["status"]
        assert (row["status"], row["start_at"], row["end_at"]) == (
            status, iso(truth["start_date_time"]), iso(sim.end_of(appointment_id)))
        assert row["meeting_id"] == appointment_id


async def test_sweeps_converge_and_fetch_only_what_drifted(
        parts: tuple[ConsulariaSim, ConsulariaClient, StoreThread]) -> None:
    sim, api, store = parts
    first = await Reconciler(api, store, scope="all", clock=lambda: sim.now).run()
    assert first.outcome == "success" and first.drifted == len(sim.appointments)
    await mirror_matches(sim, store)
    assert sim.calls[DETAIL] == len(sim.appointments)  # every new one fetched in full

    moved = next(a for a, v in sim.appointments.items() if v["status"] == "scheduled")
    sim.reschedule(moved)
    gone = next(a for a in sim.appointments if a != moved)
    sim.delete(gone)
    fetched = sim.calls[DETAIL]
    second = await Reconciler(api, store, scope="all", clock=lambda: sim.now).run()
    assert second.outcome == "success" and second.gone == 1
    assert sim.calls[DETAIL] - fetched == 2  # the drifted one, and the one no page listed
    await mirror_matches(sim, store)
    held = await store.run(lambda s: s.snapshots([gone], provider="consularia"))
    assert held[gone]["status"] == "deleted"

    window = await Reconciler(api, store, clock=lambda: sim.now + timedelta(hours=1)).run()
    assert window.outcome == "success" and window.drifted == 0
