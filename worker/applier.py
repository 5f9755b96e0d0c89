"""The applier: drains the event stream into the mirror, many events per SQLite transaction.

Each round reads up to ``batch_size`` entries (first any left pending by a dead consumer, then
new ones), applies them in one transaction on the store's own thread, then acknowledges and
deletes them in one pipelined round trip. A crash anywhere before the acknowledgement leaves the
entries pending, to be claimed again: at-least-once delivery, made harmless by the inbox. While
the store applies one batch, the next is read and decoded (without blocking), so the store's
thread seldom waits for Redis; batches are still applied one after another, in stream order.

A partitioned queue (``worker/queue.py``) is served by one reading task per stream: a blocking
read waits on one key only (on a cluster a read of several keys is refused, CROSSSLOT, as they
sit in different slots), and a task per stream wakes as soon as its own stream has entries.
Their batches take turns on the store's thread. A running worker serves only the streams whose
lease it holds, its share of them (``worker/partitions.py``): two workers never hold events of
one appointment at once, so their batches never wait on each other's locks.

While a batch is applied its entries are claimed again every third of ``claim_idle_ms``
(``XCLAIM … JUSTID``, which resets their idle time), so a batch slower than the claim timeout
is not taken over and applied a second time. Only while the stream's lease is held: a worker
that lost it (paused past the lease's time) lets the new holder claim them. It still
acknowledges what it applied (the inbox made a second application, if any, a duplicate), and
reads no more of that stream.

An entry queued without its receipt time (by a release before the receiver stamped one) is
dated as received now: a provider clock running ahead cannot pin the mirror through the queue.

An event that fails on its own is retried by redelivery; after ``max_attempts`` it goes to the
dead-letter table (credentials redacted, text no database takes escaped) and the stream moves
on. Only its own failures count (``FAILURES``), never how often its entry was delivered: a
store that cannot write for now (locked, disk full, connection lost: ``StoreBusy``) is waited
out with the entries pending, and the redeliveries a long outage brings (workers restarted,
entries claimed from one another) spend none of an event's attempts.

Nothing outside stops the loop: Redis going away (or coming back empty, its consumer group
gone), SQLite staying locked, or a bug in one round are logged and retried with a bounded
backoff, entries staying pending meanwhile. A dead applier task in a live worker would
otherwise accept work forever and apply none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import structlog
from redis.exceptions import RedisError, ResponseError

from meetsync import metrics
from meetsync.events import Event, received
from meetsync.queue import EVENT_STREAM, FIELD, GROUP, STATS, QueueClient, streams
from meetsync.redact import redact_payload
from meetsync.storable import storable, storable_value
from meetsync.store import ApplyResult, Failure, Store, StoreBusy, StoreUnavailable
from meetsync.worker.partitions import Leases

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_BACKOFF_SECONDS = 5.0
MIN_RECLAIM_SECONDS = 0.05  # how often a batch's entries are claimed again, at most
# A partition's lease outlives its holder by this much at most (or the claim timeout, if
# shorter): a crashed worker's partitions wait no longer than that for a new holder, whatever
# the claim timeout (its pending entries still wait for the claim timeout).
LEASE_TTL_MS = 5_000
FAILURES_TTL_SECONDS = 7 * 24 * 3600  # outlives any retry; a count left behind goes with it


def failures_key(stream: str) -> str:
    """The hash counting each pending entry's own failures (entry id -> count): beside its
    stream, in its cluster slot (the stream's ``{...}`` tag)."""
    return f"{stream}:failures"


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Round:
    """What one drain round did."""

    read: int = 0
    result: ApplyResult = field(default_factory=ApplyResult)
    dead_lettered: int = 0
    retrying: int = 0
    clamped: int = 0

    def add(self, other: Round) -> None:
        self.read += other.read
        self.result.add(other.result)
        self.dead_lettered += other.dead_lettered
        self.retrying += other.retrying
        self.clamped += other.clamped


@dataclass
class _Batch:
    """Entries read from a stream, decoded, kept claimed by ``keeper`` until applied."""

    entries: list[tuple[bytes, dict[bytes, bytes]]]
    reclaimed: bool
    round: Round
    keeper: asyncio.Task[None]
    applying: asyncio.Event = field(default_factory=asyncio.Event)  # the store has begun it
    events: list[Event] = field(default_factory=list)
    entry_of: dict[str, list[bytes]] = field(default_factory=dict)  # event id -> its entries
    unreadable: list[tuple[bytes, bytes]] = field(default_factory=list)


class StoreThread:
    """Runs every call on one ``Store`` in one dedicated thread, off the event loop."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meetsync-store")
        try:
            self._store = self._executor.submit(open_store).result()
        except BaseException:  # e.g. StoreBusy: the caller tries again later, with a new one
            self._executor.shutdown()
            raise

    async def run(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self._store)

    def close(self) -> None:
        self._executor.submit(self._store.close).result()
        self._executor.shutdown()


class Applier:
    """One consumer of the event stream: of each of its partitions."""

    def __init__(
        self,
        redis: QueueClient,
        store: StoreThread,
        *,
        partitions: int = 1,
        name: str | None = None,
        batch_size: int = 5_000,
        claim_idle_ms: int = 30_000,
        max_attempts: int = 5,
        busy_backoff: float = 0.2,
        on_ties: Callable[[set[tuple[str, str]]], Any] | None = None,
        clock_skew_seconds: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.store = store
        self.streams = streams(partitions)
        self.name = name or consumer_name()
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.max_attempts = max_attempts
        self.busy_backoff = busy_backoff
        self.on_ties = on_ties
        self.tolerance = int(clock_skew_seconds * 1_000_000)
        self.clock = clock
        self.busy_waits = 0  # times the store stayed locked past its busy timeout
        self.leases: Leases | None = None  # this worker's share, while ``run()`` runs
        self._stopping = asyncio.Event()
        self._ahead: dict[str, asyncio.Task[_Batch | None]] = {}  # the next batch, per stream
        self._in_flight: dict[str, set[bytes]] = {}  # entry ids read and not yet finished
        metrics.applying()  # this process's /metrics now carries the applier's series

    async def ensure_group(self) -> None:
        for stream in self.streams:
            await self._ensure_group(stream)

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, block_ms: int = 1000) -> None:
        """Serve this worker's share of the streams until ``stop()``: a task per stream whose
        lease it holds, started and stopped as the share changes (``worker/partitions.py``).
        A stream handed over is released once its task has finished its batch."""
        leases = self.leases = Leases(self.redis, self.streams, self.name,
                                      ttl_ms=min(self.claim_idle_ms, LEASE_TTL_MS))
        log.info("applier_started", consumer=self.name, batch_size=self.batch_size,
                 streams=len(self.streams))
        serving: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        try:
            async with asyncio.TaskGroup() as tasks:
                try:
                    while not self._stopping.is_set():
                        for stream in [s for s, (_, task) in serving.items() if task.done()]:
                            del serving[stream]  # handed over, or its lease lapsed
                        held = await self._tick(leases, busy=set(serving))
                        for stream, (stop, _) in serving.items():
                            if stream not in held or stream not in leases.wanted:
                                stop.set()
                        for stream in sorted((held & leases.wanted) - set(serving)):
                            stop = asyncio.Event()
                            serving[stream] = (stop, tasks.create_task(
                                self._serve(stream, block_ms, stop),
                                name=f"meetsync-applier:{stream}"))
                        await self._pause(leases.interval)
                finally:
                    for stop, _ in serving.values():
                        stop.set()
        finally:
            try:
                await leases.leave()
            except (RedisError, OSError) as exc:  # the leases lapse on their own
                log.warning("applier_leases_kept", error_type=type(exc).__name__)

    async def _tick(self, leases: Leases, busy: set[str]) -> frozenset[str]:
        """Keep the leases; on failure, the ones still surely held (the others lapsed)."""
        before = leases.held()
        try:
            held = await leases.tick(busy)
        except (RedisError, OSError) as exc:
            log.warning("applier_redis_unavailable", error_type=type(exc).__name__,
                        during="leases")
            return leases.held()
        except Exception as exc:
            log.error("applier_leases_failed", error_type=type(exc).__name__,
                      error=_first_line(exc))
            return leases.held()
        if held != before:
            log.info("applier_streams", consumer=self.name, held=sorted(held))
        return held

    async def _serve(self, stream: str, block_ms: int, stop: asyncio.Event) -> None:
        """Drain one stream while its lease is held, until ``stop()`` or ``stop`` is set,
        outliving Redis outages and failed rounds."""
        delay = self.busy_backoff
        group_ready = False

        def serving() -> bool:
            return not (self._stopping.is_set() or stop.is_set()) and self._holds(stream)

        while serving():
            try:
                if not group_ready:
                    await self._ensure_group(stream)
                    group_ready = True
                await self._pump(stream, block_ms, serving)
            except ResponseError as exc:
                # NOGROUP: Redis restarted without its data; the group comes back at id 0.
                group_ready = False
                log.warning("applier_redis_error", error=_first_line(exc))
            except (RedisError, OSError) as exc:
                log.warning("applier_redis_unavailable", error_type=type(exc).__name__,
                            retry_in=round(delay, 2))
            except Exception as exc:
                log.error("applier_round_failed", error_type=type(exc).__name__,
                          error=_first_line(exc), retry_in=round(delay, 2))
            else:
                delay = self.busy_backoff
                continue
            await self._pause(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        await self._finish_ahead(stream)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on ``stop()``."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stopping.set()

    def _holds(self, stream: str) -> bool:
        """Whether this worker may serve ``stream``: it holds the lease, or serves every
        stream (``drain()``, outside ``run()``)."""
        return self.leases is None or self.leases.holds(stream)

    async def drain(self) -> Round:
        """Apply everything queued now on every stream (burst mode for tests and the CLI),
        then return."""
        await self.ensure_group()
        total = Round()
        while True:
            read = total.read
            for stream in self.streams:
                total.add(await self._pump(stream, None, lambda: True))
            if total.read == read:
                return total

    async def drain_once(self, block_ms: int | None, stream: str = EVENT_STREAM) -> Round:
        """One batch from ``stream``: entries a dead consumer left pending, else new ones."""
        batch = await self._read(stream, block_ms)
        return Round() if batch is None else await self._finish(stream, batch)

    async def _pump(self, stream: str, block_ms: int | None,
                    serving: Callable[[], bool]) -> Round:
        """Batches from ``stream`` until a read finds none or ``serving()`` turns false,
        reading (and decoding) the next batch while the store applies this one: the store's
        thread is rarely left waiting for Redis. The next batch is read without blocking, and
        stays for the next call if this one fails."""
        total = Round()
        while True:
            ahead = self._ahead.pop(stream, None)
            batch = await (ahead if ahead is not None else self._read(stream, block_ms))
            if batch is None:
                return total
            if serving():
                self._ahead[stream] = asyncio.create_task(
                    self._read_ahead(stream, batch.applying),
                    name=f"meetsync-read-ahead:{stream}")
            total.add(await self._finish(stream, batch))
            if not serving():
                return total

    async def _read_ahead(self, stream: str, after: asyncio.Event) -> _Batch | None:
        """The next batch, read once the store has begun this one (not while it waits for
        the store behind other streams' batches: what arrives meanwhile joins the next)."""
        await after.wait()
        return await self._read(stream, None)

    async def _finish_ahead(self, stream: str) -> None:
        """Apply the batch read ahead of a stream no longer served: its entries are claimed
        by this consumer, so it is the one to apply them at once."""
        ahead = self._ahead.pop(stream, None)
        if ahead is None:
            return
        try:
            batch = await ahead
            if batch is not None:
                await self._finish(stream, batch)
        except Exception as exc:  # left pending, claimed by a consumer after the timeout
            log.warning("applier_read_ahead_failed", error_type=type(exc).__name__,
                        error=_first_line(exc))

    async def _read(self, stream: str, block_ms: int | None) -> _Batch | None:
        """The next batch of ``stream``, decoded and kept claimed (see the module docstring)
        from here until ``_finish``; None if there is none."""
        # Not those of the batch being applied: they are ours already (a claim timeout of 0
        # makes every pending entry stale at once). Nor those of a batch finished while the
        # claim was out: claimed before their acknowledgement, applied already.
        in_flight = self._in_flight.setdefault(stream, set())
        busy = set(in_flight)
        entries = [entry for entry in await self._claim_stale(stream)
                   if entry[0] not in busy and entry[0] not in in_flight]
        reclaimed = bool(entries)
        if not entries:
            response = await self.redis.xreadgroup(
                GROUP, self.name, {stream: ">"}, count=self.batch_size, block=block_ms
            )
            entries = response[0][1] if response else []
        if not entries:
            return None
        batch = _Batch(entries, reclaimed, Round(read=len(entries)), asyncio.create_task(
            self._keep_claimed(stream, [entry_id for entry_id, _ in entries]),
            name=f"meetsync-claims:{stream}"))
        try:
            self._decode(batch)
        except BaseException:
            batch.keeper.cancel()
            raise
        in_flight.update(entry_id for entry_id, _ in entries)
        return batch

    async def _finish(self, stream: str, batch: _Batch) -> Round:
        """Apply ``batch``, then acknowledge it; its claims are kept until then."""
        try:
            return await self._process(stream, batch)
        finally:
            batch.applying.set()  # if it failed before the store began it
            self._in_flight[stream].difference_update(entry_id for entry_id, _ in batch.entries)
            batch.keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await batch.keeper

    async def _keep_claimed(self, stream: str, entry_ids: list[bytes]) -> None:
        period = max(self.claim_idle_ms / 3000, MIN_RECLAIM_SECONDS)
        while True:
            await asyncio.sleep(period)
            if not self._holds(stream):
                return
            try:
                await self.redis.xclaim(stream, GROUP, self.name, 0, [*entry_ids], justid=True)
            except (RedisError, OSError) as exc:  # tried again next period
                log.warning("applier_reclaim_failed", error_type=type(exc).__name__)

    async def _claim_stale(self, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        _, claimed, *_ = await self.redis.xautoclaim(
            stream, GROUP, self.name, self.claim_idle_ms, "0-0", count=self.batch_size
        )
        return [entry for entry in claimed if entry[1]]

    def _decode(self, batch: _Batch) -> None:
        now = int(self.clock() * 1_000_000)
        for entry_id, fields in batch.entries:
            raw = fields.get(FIELD, b"")
            try:
                event = Event.from_json(raw)
            except (ValueError, TypeError):
                batch.unreadable.append((entry_id, raw))
                continue
            if event.received_at is None:
                event = received(event, now, self.tolerance)
                batch.round.clamped += event.claimed_at is not None
            batch.events.append(event)
            batch.entry_of.setdefault(event.id, []).append(entry_id)

    async def _process(self, stream: str, batch: _Batch) -> Round:
        entries, reclaimed, round_ = batch.entries, batch.reclaimed, batch.round
        events, entry_of, unreadable = batch.events, batch.entry_of, batch.unreadable
        started = time.perf_counter()
        result, failures = await self._apply(events, batch.applying)
        seconds = time.perf_counter() - started
        round_.result = result
        done = {entry_id for entry_id, _ in entries}
        # One verdict per event id: a duplicate delivery of a poison event fails twice.
        failed = {failure.event.id: failure for failure in failures}
        # Entries whose count may exist: a new entry (not reclaimed) has failed nowhere yet.
        counted = set(done) if reclaimed else set()
        for failure in failed.values():
            event_entries = entry_of[failure.event.id]
            counted.update(event_entries)
            attempts = await self._failed_again(stream, event_entries)
            if attempts < self.max_attempts:
                done.difference_update(event_entries)
                round_.retrying += 1
                log.warning("event_failed", event_id=failure.event.id, reason=failure.reason,
                            attempts=attempts)
            elif await self._dead_letter(failure.event.id, failure.event.appointment_id,
                                         failure.event.type, failure.reason,
                                         _payload(failure.event)):
                round_.dead_lettered += 1
            else:  # left pending, tried again later; the batch's other letters go on
                done.difference_update(event_entries)
        for entry_id, raw in unreadable:
            if await self._dead_letter(entry_id.decode(), None, None, "unreadable event", raw):
                round_.dead_lettered += 1
            else:
                done.discard(entry_id)

        # Not a transaction: on a cluster the stream and STATS sit in different slots, and
        # the pipeline sends each command to its own node.
        async with self.redis.pipeline(transaction=False) as pipe:
            if done:
                acked = sorted(done)
                pipe.xack(stream, GROUP, *acked)
                pipe.xdel(stream, *acked)
                if forget := sorted(done & counted):
                    pipe.hdel(failures_key(stream), *(entry.decode() for entry in forget))
            pipe.hincrby(STATS, "applied", result.applied)
            pipe.hincrby(STATS, "duplicates", result.duplicates)
            pipe.hincrby(STATS, "stale", result.stale)
            pipe.hincrby(STATS, "dead_letters", round_.dead_lettered)
            if round_.clamped:
                pipe.hincrby(STATS, "clamped", round_.clamped)
            if result.conflicts:
                pipe.hincrby(STATS, "meeting_conflicts", len(result.conflicts))
            if result.account_conflicts:
                pipe.hincrby(STATS, "account_conflicts", len(result.account_conflicts))
            await pipe.execute()
        metrics.applied_round(round_, seconds)
        for conflict in result.conflicts:
            log.warning(
                "meeting_conflict", meeting_id=conflict.meeting_id, held_by=conflict.held_by,
                named_by=conflict.named_by,
                rule="a meeting stays with the appointment it was first seen under; the other"
                " appointment's fields were applied without it",
            )
        for foreign in result.account_conflicts:
            log.warning(
                "account_conflict", provider=foreign.provider,
                appointment_id=foreign.appointment_id, owner=foreign.owner,
                sender=foreign.sender,
                rule="an appointment belongs to the account it was first received under;"
                " another account's event for it is not applied",
            )
        if result.ties and self.on_ties is not None:
            await self.on_ties(result.ties)
        log.debug("batch_applied", read=round_.read, applied=result.applied,
                  duplicates=result.duplicates, stale=result.stale)
        return round_

    async def _apply(self, events: list[Event], applying: asyncio.Event
                     ) -> tuple[ApplyResult, list[Failure]]:
        loop = asyncio.get_running_loop()

        def apply(store: Store) -> tuple[ApplyResult, list[Failure]]:
            loop.call_soon_threadsafe(applying.set)
            return store.apply(events)

        return await self._store_call(apply, events=len(events))

    async def _store_call(self, fn: Callable[[Store], T], **context: Any) -> T:
        """``fn`` on the store, waiting out (backing off) whatever is the database's and not
        the data's: a lock held past the busy timeout, a full disk, a lost connection."""
        delay = self.busy_backoff
        while True:
            try:
                return await self.store.run(fn)
            except StoreBusy as retry:
                # Entries stay pending while we wait; nothing is lost if we die here, and no
                # event's attempt is spent.
                self.busy_waits += 1
                metrics.STORE_BUSY.inc()
                log.warning("store_unavailable" if isinstance(retry, StoreUnavailable)
                            else "store_busy", error=_first_line(retry),
                            retry_in=round(delay, 2), **context)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _failed_again(self, stream: str, entry_ids: list[bytes]) -> int:
        """Count one more failure of the event queued as ``entry_ids``; its failures so far.
        Its own failures, not its entry's deliveries (XPENDING's count also grows with every
        claim after an outage)."""
        key = failures_key(stream)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.hincrby(key, entry_id.decode(), 1)
            pipe.expire(key, FAILURES_TTL_SECONDS)
            *counts, _ = await pipe.execute()
        return max(int(count) for count in counts)

    async def _dead_letter(
        self, event_id: str, appointment_id: str | None, type_: str | None, reason: str,
        payload: bytes,
    ) -> bool:
        """Write the letter; False (logged) if the store refused it. Whatever the event holds
        is made storable first (NUL and lone surrogates escaped, credentials redacted), so
        its own content cannot refuse it; a letter refused anyway stays pending without
        holding back the other letters of its batch."""
        safe = orjson.dumps(storable_value(redact_payload(payload))).decode()
        event_id, reason = storable(event_id), storable(reason)
        appointment_id = None if appointment_id is None else storable(appointment_id)
        type_ = None if type_ is None else storable(type_)
        try:
            await self._store_call(
                lambda store: store.add_dead_letter(
                    event_id, appointment_id, type_, reason, self.max_attempts, safe
                ),
                dead_letter=event_id,
            )
        except Exception as exc:
            log.error("dead_letter_failed", event_id=event_id, error_type=type(exc).__name__,
                      error=_first_line(exc))
            return False
        log.error("event_dead_lettered", event_id=event_id, reason=reason)
        return True


def _payload(event: Event) -> bytes:
    """The event as JSON, even one holding text no encoder takes (a lone surrogate)."""
    try:
        return event.to_json()
    except orjson.JSONEncodeError:
        return orjson.dumps(storable_value(dataclasses.asdict(event)))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""
