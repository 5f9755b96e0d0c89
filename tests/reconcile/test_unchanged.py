"""A sweep over a mirror that already holds what the provider lists builds no events: each page
asks the mirror once (``Store.snapshot_values``) and only the rows that differ become events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meetsync.events import Event, iso_utc
from meetsync.providers import SweepPage, Unchanged, Window
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.store import open_store
from meetsync.worker.reconciler import _same

MakeHarness = Callable[..., Any]


def held_as_listed(h: Any, account: str = "default") -> Unchanged:
    """The reconciler's ``Unchanged`` at the provider's now."""

    async def check(listed: dict[str, tuple[object, ...]]) -> set[str]:
        ids, now = list(listed), iso_utc(h.sim.now)
        held = await h.store.run(
            lambda s: s.snapshot_values(ids, provider="savvycal", account=account))
        return {a for a, values in listed.items() if _same(values, held.get(a), now)}

    return check


async def sweep(h: Any, unchanged: Unchanged) -> list[SweepPage]:
    return [page async for page in h.client.sweep(
        Window(), event_id=lambda a: f"s:{a}", clock=lambda: h.sim.now, unchanged=unchanged,
        page_size=25)]


async def test_only_rows_that_differ_become_events(sim: SavvyCalSim, harness: MakeHarness) -> None:
    h = harness()
    h.apply(sim.play(60))
    assert (await h.reconciler(scope="all").run()).outcome == "success"
    pages = await sweep(h, held_as_listed(h))
    assert [e for page in pages for e in page.events] == []
    assert sum(len(page.unchanged) for page in pages) == len(sim.appointments)

    moved = sorted(sim.appointments)[7]
    sim.reschedule(moved)  # its webhook is lost
    pages = await sweep(h, held_as_listed(h))
    events: list[Event] = [e for page in pages for e in page.events]
    assert [e.appointment_id for e in events] == [moved]
    assert sum(len(page.unchanged) for page in pages) == len(sim.appointments) - 1

    report = await h.reconciler(scope="all").run()
    assert (report.appointments_seen, report.drifted, report.repaired) == (
        len(sim.appointments), 1, 1)
    h.assert_mirror_matches()


async def test_another_accounts_rows_are_never_unchanged(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    h = harness()
    h.apply(sim.play(10))  # received under "default": its rows
    pages = await sweep(h, held_as_listed(h, account="beta"))
    assert sum(len(page.unchanged) for page in pages) == 0
    assert len([e for page in pages for e in page.events]) == len(sim.appointments)


def test_snapshot_values_are_the_snapshots_of_the_account(
    db_path: Any, samples: Any
) -> None:
    from meetsync.providers.savvycal import SavvyCalWebhooks

    event = SavvyCalWebhooks().parse(samples.body(), account="acme")
    assert isinstance(event, Event)
    with open_store(db_path) as store:
        store.apply([event])
        ids = [event.appointment_id, "appt_unknown"]
        snapshots = store.snapshots(ids, provider="savvycal")
        assert store.snapshot_values(ids, provider="savvycal") == {
            key: tuple(row.values()) for key, row in snapshots.items()}
        assert store.snapshot_values(ids, provider="savvycal", account="acme") == \
            store.snapshot_values(ids, provider="savvycal")
        assert store.snapshot_values(ids, provider="savvycal", account="beta") == {}
