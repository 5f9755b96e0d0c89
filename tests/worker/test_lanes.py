"""The refetch lane's Redis scripts on a real Redis: bounded whatever arrives, known ids first,
folded while waiting, and a leased request back in line once its lease runs out."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync import queue
from meetsync.dev.redis_server import RedisServer
from meetsync.queue import LaneKeys
from meetsync.worker import lanes

REQUESTS = st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=80)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=REQUESTS, bound=st.integers(1, 8))
def test_property_a_lane_stays_bounded_and_serves_known_ids_first(
    redis_server: RedisServer, requests: list[tuple[int, bool]], bound: int
) -> None:
    async def scenario() -> None:
        redis = aioredis.Redis.from_url(redis_server.url)
        try:
            await redis.flushdb()
            known_ids = {f"a{n}" for n, known in requests if known}
            outcomes = []
            for t, (n, known) in enumerate(requests):
                outcomes.append(await queue.request(
                    redis, "p", "acct", f"a{n}", bound=bound, known=known, hint=True,
                    now_ms=1_000_000 + t))
                keys = LaneKeys.of("p", "acct")
                assert await redis.zcard(keys.waiting) + await redis.zcard(keys.in_flight) \
                    <= bound
            counts = (await queue.lane_figures(redis, [("p", "acct")]))[("p", "acct")].counts
            # the mark is set when a request collapsed, or a known one displaced an unknown one
            assert bool(await redis.exists(LaneKeys.of("p", "acct").verify)) == bool(
                counts["collapsed"])
            assert counts["collapsed"] >= outcomes.count("collapsed")
            taken = []
            while (found := await lanes.take(redis, "p", "acct")) is not None:
                taken.append(found)
                await lanes.done(redis, "p", "acct", found)
            assert len(taken) == len(set(taken))  # each waiting id once
            tiers = [0 if a in known_ids else 1 for a in taken]
            assert tiers == sorted(tiers)  # every known id before any unknown one
            # a known id never collapsed while an unknown one waited
            assert known_ids <= set(taken) or all(t == 0 for t in tiers)
            assert counts["accepted"] + counts["folded"] == outcomes.count("accepted") \
                + outcomes.count("folded")
            assert sum(counts.values()) >= len(requests)
            assert await redis.dbsize() <= 3  # waiting and in-flight empty: mark, counts
        finally:
            await redis.aclose()

    asyncio.run(scenario())


async def test_a_known_id_displaces_the_newest_unknown_one_in_a_full_lane(
    redis: aioredis.Redis,
) -> None:
    for n in range(3):
        assert await queue.request(redis, "p", "a", f"forged{n}", bound=3, known=False,
                                   hint=True) == "accepted"
    assert await queue.request(redis, "p", "a", "forged3", bound=3, known=False,
                               hint=True) == "collapsed"
    assert await queue.request(redis, "p", "a", "held", bound=3, known=True,
                               hint=True) == "accepted"
    assert await queue.request(redis, "p", "a", "held", bound=3, known=True,
                               hint=True) == "folded"
    order = []
    while (found := await lanes.take(redis, "p", "a")) is not None:
        order.append(found)
        await lanes.done(redis, "p", "a", found)
    assert order == ["held", "forged0", "forged1"]
    counts = (await queue.lane_figures(redis, [("p", "a")]))[("p", "a")].counts
    assert counts == {"accepted": 4, "folded": 1, "collapsed": 2, "dropped": 0}
    assert await lanes.take_verify_mark(redis, "p", "a") is True
    assert await lanes.take_verify_mark(redis, "p", "a") is False  # one sweep takes it


async def test_a_leased_request_goes_back_in_line_when_its_lease_runs_out(
    redis: aioredis.Redis,
) -> None:
    await queue.request(redis, "p", "a", "first", bound=5, now_ms=1000)
    await queue.request(redis, "p", "a", "second", bound=5, now_ms=2000)
    assert await lanes.take(redis, "p", "a", lease_seconds=10, now_ms=5000) == "first"
    # its worker died: within the lease nobody else takes it
    assert await lanes.take(redis, "p", "a", lease_seconds=10, now_ms=6000) == "second"
    assert await lanes.take(redis, "p", "a", lease_seconds=10, now_ms=14_000) is None
    # a request for it meanwhile is folded: it is in flight
    assert await queue.request(redis, "p", "a", "first", bound=5) == "folded"
    # past the lease, the next take puts it back (at its old place) and hands it out again
    assert await lanes.take(redis, "p", "a", lease_seconds=10, now_ms=15_001) == "first"
    await lanes.done(redis, "p", "a", "first")
    assert await redis.zcard(LaneKeys.of("p", "a").in_flight) == 1  # "second" still leased


@pytest.mark.parametrize("per_window,window,horizon,expected",
                         [(60, 60, 300, 300), (4, 1, 300, 1200), (60, 60, 10, 10),
                          (1, 60, 10, 1)])
def test_a_lane_holds_what_its_budget_serves_within_the_horizon(
    per_window: int, window: float, horizon: int, expected: int
) -> None:
    assert queue.bound_of(per_window, window, horizon) == expected
