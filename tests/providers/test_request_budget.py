"""The shared request budget never grants more than N per 60 s window and serves refetch first."""

from __future__ import annotations

import asyncio

from meetsync.providers.savvycal.client import Priority, RequestBudget
from meetsync.simulator import ManualClock


async def drive(clock: ManualClock, tasks: list[asyncio.Task[None]]) -> None:
    """Move time to each next deadline until every task is done."""
    await clock.settle()
    while not all(task.done() for task in tasks):
        deadline = clock.next_deadline()
        assert deadline is not None, "tasks are stuck with nobody sleeping"
        await clock.advance_to(deadline)


async def test_never_more_than_n_in_any_window(clock: ManualClock) -> None:
    budget = RequestBudget(10, clock=clock, sleep=clock.sleep)
    granted: list[float] = []

    async def take(priority: Priority) -> None:
        await budget.acquire(priority)
        granted.append(clock())

    tasks = [asyncio.create_task(take("sweep" if i % 3 else "refetch")) for i in range(35)]
    await drive(clock, tasks)
    assert budget.spent == 35 == len(granted)
    assert all(later - earlier >= 60 for earlier, later in zip(granted, granted[10:], strict=False))
    assert granted == sorted(granted)
    assert granted[-1] == 180.0
    assert budget.throttled_seconds > 0


async def test_refetch_is_served_before_waiting_sweeps(clock: ManualClock) -> None:
    budget = RequestBudget(1, clock=clock, sleep=clock.sleep)
    await budget.acquire("sweep")
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        await budget.acquire(priority)
        order.append(name)

    tasks = [asyncio.create_task(take(f"sweep{i}", "sweep")) for i in range(3)]
    await clock.settle()
    tasks.append(asyncio.create_task(take("refetch", "refetch")))
    await drive(clock, tasks)
    assert order == ["refetch", "sweep0", "sweep1", "sweep2"]
    assert clock() == 240.0


async def test_a_cancelled_waiter_does_not_block_the_line(clock: ManualClock) -> None:
    budget = RequestBudget(1, clock=clock, sleep=clock.sleep)
    await budget.acquire("sweep")
    first = asyncio.create_task(budget.acquire("refetch"))
    second = asyncio.create_task(budget.acquire("sweep"))
    await clock.settle()
    first.cancel()
    await drive(clock, [second])
    assert budget.spent == 2
