"""The receiver's group commit (``GroupCommit``): concurrent deliveries share one Redis round trip
(one Lua call), each is answered only once Redis holds its own entry, and an entry Redis refuses
fails alone, as it did when each delivery sent its own ``XADD`` (``meetsync.queue.publish``, the
oracle of the property test below)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.queue import EVENT_STREAM, FIELD, partition_of, publish, stream_key, streams
from meetsync.settings import Settings
from meetsync.webhooks import create_app
from meetsync.webhooks.receiver import GroupCommit

if TYPE_CHECKING:
    from tests.providers.savvycal.samples import Samples

URL = "/webhooks/savvycal"


def _deliveries(samples: Samples, count: int) -> list[tuple[str, str, bytes]]:
    """``count`` distinct deliveries: (event id, appointment id, body)."""
    found = []
    for n in range(count):
        event_id, appointment_id = f"evt_{n:04}", f"appt_{n:04}"
        body = samples.body(event_id=event_id, obj=samples.appointment(id=appointment_id))
        found.append((event_id, appointment_id, body))
    return found


async def _post_all(app: object, samples: Samples, deliveries: list[tuple[str, str, bytes]]
                    ) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(*(
            client.post(URL, content=body, headers=samples.native_headers(body))
            for _, _, body in deliveries))


async def _ids_on(redis: aioredis.Redis | RedisCluster, key: str) -> list[str]:
    return [Event.from_json(fields[FIELD]).id for _, fields in await redis.xrange(key)]


async def test_concurrent_deliveries_each_land_once_in_few_round_trips(
    settings: Settings, redis: aioredis.Redis, samples: Samples
) -> None:
    deliveries = _deliveries(samples, 64)
    await redis.config_resetstat()
    responses = await _post_all(create_app(settings, redis=redis), samples, deliveries)
    assert [r.status_code for r in responses] == [202] * 64
    assert [r.json()["id"] for r in responses] == [event_id for event_id, _, _ in deliveries]
    assert sorted(await _ids_on(redis, EVENT_STREAM)) == [e for e, _, _ in deliveries]
    calls = await redis.info("commandstats")
    assert calls["cmdstat_xadd"]["calls"] == 64
    assert calls["cmdstat_evalsha"]["calls"] <= 8  # shared: one delivery each would be 64


async def test_no_delivery_is_answered_before_redis_holds_its_entry(
    settings: Settings, redis: aioredis.Redis, samples: Samples
) -> None:
    deliveries = _deliveries(samples, 16)
    app = create_app(settings, redis=redis)
    await redis.client_pause(5000, all=False)  # writes wait; reads go on
    try:
        posting = asyncio.create_task(_post_all(app, samples, deliveries))
        await asyncio.sleep(0.3)
        assert not posting.done()
        assert await redis.xlen(EVENT_STREAM) == 0
    finally:
        await redis.client_unpause()
    responses = await posting
    assert [r.status_code for r in responses] == [202] * 16
    assert sorted(await _ids_on(redis, EVENT_STREAM)) == [e for e, _, _ in deliveries]


async def test_a_refused_entry_fails_only_its_own_delivery(
    settings: Settings, redis: aioredis.Redis, samples: Samples
) -> None:
    """One partition's stream key holds a string (WRONGTYPE): the deliveries queued there get
    the usual 503 "queue unavailable", every other delivery of the same batches is queued."""
    deliveries = _deliveries(samples, 40)
    partition = {a: partition_of("savvycal", a, 4) for _, a, _ in deliveries}
    assert {1} < set(partition.values())  # some of each
    await redis.set(stream_key(1, 4), "not a stream")
    app = create_app(replace(settings, queue_partitions=4), redis=redis)

    responses = await _post_all(app, samples, deliveries)
    for (event_id, appointment_id, _), response in zip(deliveries, responses, strict=True):
        if partition[appointment_id] == 1:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert response.json() == {"error": "queue unavailable"}
        else:
            assert response.status_code == 202
            assert response.json()["id"] == event_id
    for p in (0, 2, 3):
        assert sorted(await _ids_on(redis, stream_key(p, 4))) == [
            e for e, a, _ in deliveries if partition[a] == p]
    assert await redis.get(stream_key(1, 4)) == b"not a stream"


def _event(n: int, appointment_id: str) -> Event:
    return Event(id=f"evt_{n}", provider="savvycal", type="appointment.updated",
                 occurred_at=1_740_841_200_000_000 + n, appointment_id=appointment_id)


async def test_on_a_cluster_each_partition_is_its_own_call_and_fails_alone(
    cluster: RedisCluster,
) -> None:
    events = [_event(n, f"appt_{n}") for n in range(40)]
    broken = stream_key(2, 4)
    await cluster.set(broken, "not a stream")
    queue = GroupCommit(cluster, 4)
    outcomes = await asyncio.gather(*(queue.publish(e) for e in events), return_exceptions=True)
    for event, outcome in zip(events, outcomes, strict=True):
        if stream_key(partition_of("savvycal", event.appointment_id, 4), 4) == broken:
            assert isinstance(outcome, RedisError)
        else:
            assert outcome is None
    for key in streams(4):
        if key != broken:
            assert await _ids_on(cluster, key) == [
                e.id for e in events
                if stream_key(partition_of("savvycal", e.appointment_id, 4), 4) == key]


async def test_the_script_is_loaded_again_when_redis_has_lost_it(redis: aioredis.Redis) -> None:
    queue = GroupCommit(redis)
    await queue.publish(_event(1, "appt_1"))
    await redis.script_flush()  # as a restart without persistence, or a failover, would
    await queue.publish(_event(2, "appt_2"))
    assert await _ids_on(redis, EVENT_STREAM) == ["evt_1", "evt_2"]


async def test_redis_gone_fails_every_waiting_delivery(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", persistent=False).start()
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    try:
        queue = GroupCommit(client)
        await queue.publish(_event(0, "appt_0"))
        server.stop()
        outcomes = await asyncio.gather(*(queue.publish(_event(n, f"appt_{n}"))
                                          for n in range(1, 9)), return_exceptions=True)
    finally:
        server.stop()
        await client.aclose()
    assert all(isinstance(outcome, RedisError | OSError) for outcome in outcomes)


appointments = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)


@hypothesis_settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(appointment_ids=st.lists(appointments, max_size=40), partitions=st.integers(1, 5),
       broken=st.sets(st.integers(0, 4), max_size=2), wave=st.integers(1, 40))
def test_property_the_batches_queue_what_one_xadd_per_delivery_queued(
    redis_server: RedisServer, appointment_ids: list[str], partitions: int, broken: set[int],
    wave: int,
) -> None:
    """Whatever the events, partitions, refused partitions and concurrency: each event's
    outcome and each stream's entries, in order, are those of one ``publish`` per event."""
    events = [_event(n, a) for n, a in enumerate(appointment_ids)]
    refused = [stream_key(p, partitions) for p in broken if p < partitions]

    async def run(send: str) -> tuple[list[str], dict[str, list[bytes]]]:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await client.flushdb()
            for key in refused:
                await client.set(key, "not a stream")
            outcomes: list[BaseException | None] = []
            if send == "one XADD each":
                for event in events:
                    try:
                        await publish(client, event, partitions)
                        outcomes.append(None)
                    except RedisError as exc:
                        outcomes.append(exc)
            else:
                queue = GroupCommit(client, partitions)
                for start in range(0, len(events), wave):  # waves of concurrent deliveries
                    outcomes += await asyncio.gather(
                        *(queue.publish(e) for e in events[start:start + wave]),
                        return_exceptions=True)
            held: dict[str, list[bytes]] = defaultdict(list)
            for key in streams(partitions):
                if key not in refused:
                    held[key] = [fields[FIELD] for _, fields in await client.xrange(key)]
            said = ["queued" if outcome is None else "refused" if isinstance(outcome, RedisError)
                    else type(outcome).__name__ for outcome in outcomes]
            return said, dict(held)
        finally:
            await client.aclose()

    assert asyncio.run(run("batched")) == asyncio.run(run("one XADD each"))
