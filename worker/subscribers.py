"""Signed deliveries of the change log to subscribers (docs/mirror.md, "Subscribers").

Each configured subscriber gets one task in every worker; the task that holds the
subscriber's Redis lease (``SET NX PX``, refreshed while it sends, lapsing when its worker
dies) delivers, the others wait to take over. It follows the subscriber's own cursor on the
change log (``store/subscribers.py``) and POSTs each change it wants, one at a time, in ``seq``
order: a change is sent only once every earlier one was acknowledged (2xx), given up on, or
filtered out, so each appointment's changes arrive in order. Body and headers follow Standard
Webhooks (https://www.standardwebhooks.com/): ``webhook-id`` is the subscriber's name and the
``seq`` (the same on every retry, so a subscriber dedupes), ``webhook-timestamp`` the attempt's
time, ``webhook-signature`` one ``v1,<base64>`` per secret (rotation), signed by the ``svix``
library.

A failed attempt (no answer, a timeout, any status but 2xx and 410) is retried after an
exponential backoff with jitter, at least its ``Retry-After``; after
``MEETSYNC_SUBSCRIBER_RETRY_SECONDS`` (24 h) of failures the change is dead-lettered for that
subscriber (``subscriber_dead_letters``) and the next one goes. A 410 disables the subscriber
(persisted) until ``meetsync subscribers test NAME`` succeeds, ``meetsync subscribers enable
NAME``, or its URL changes. Each subscriber has its own task, so one that fails never delays
another. ``data`` is the read API's current view of the entity (``store/views.py``), null once
it is gone; ``host_url`` and ``password`` in it travel only to ``https://`` subscribers (or
``http://`` on loopback), anyone else gets them as null.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

import httpx
import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from svix.webhooks import Webhook

from meetsync import metrics
from meetsync.settings import Settings, Subscriber
from meetsync.store import Store, StoreBusy
from meetsync.store import subscribers as cursors
from meetsync.store.views import entity_view
from meetsync.worker.applier import consumer_name

log = structlog.get_logger(__name__)

T = TypeVar("T")
BATCH = 200  # changes read per look at the log
IDLE_SECONDS = 0.25  # between looks at the log when it has nothing new
CREDENTIALS = ("host_url", "password")

_REFRESH = """if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"""
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1]) else return 0 end"""


class StoreRunner(Protocol):
    """Where the deliveries' store calls run (the worker's ``StoreThread``)."""

    def run(self, fn: Callable[[Store], T]) -> Awaitable[T]: ...


def lease_key(name: str) -> str:
    """The Redis key a subscriber's deliverer holds (its value: the worker's consumer name)."""
    return f"meetsync:subscriber:{name}"


def webhook_id(name: str, seq: int) -> str:
    """Stable per subscriber and change: every retry, and any worker, sends the same one."""
    return f"msg_{name}_{seq}"


def url_digest(url: str) -> str:
    """What a disabled subscriber remembers of its URL: a new URL re-enables it."""
    return hashlib.sha256(url.encode()).hexdigest()


def without_credentials(data: Any) -> Any:
    """``data`` with every ``host_url`` and ``password`` (the linked meeting's too) null."""
    if isinstance(data, dict):
        return {k: None if k in CREDENTIALS else without_credentials(v) for k, v in data.items()}
    if isinstance(data, list):
        return [without_credentials(v) for v in data]
    return data


def payload(name: str, change: dict[str, Any], data: Any) -> bytes:
    """The pinned body: the change, and its entity as the read API shows it now."""
    return orjson.dumps({
        "id": webhook_id(name, change["seq"]),
        "type": f"{change['entity']}.changed",
        "seq": change["seq"],
        "provider": change["provider"],
        "account": change["account"],
        "appointment_id": change["appointment_id"],
        "changed_at": change["changed_at"],
        "data": data,
    })


def signed_headers(secrets: tuple[str, ...], msg_id: str, body: bytes,
                   now: datetime) -> dict[str, str]:
    """Standard Webhooks' three headers; one signature per secret, space-separated."""
    text = body.decode()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(msg_id, now, text)
                                      for secret in secrets),
    }


@dataclass(frozen=True)
class Backoff:
    """Exponential, with "equal jitter" (half fixed, half random): retries of many changes
    and workers spread out instead of arriving together."""

    first: float
    maximum: float

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        base: float = min(self.maximum, self.first * 2.0 ** min(max(attempt - 1, 0), 40))
        wait = base / 2 + rng.uniform(0, base / 2)
        return max(wait, retry_after) if retry_after is not None else wait


def retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds (delta-seconds, or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Attempt:
    """What one POST came to."""

    ok: bool = False
    gone: bool = False
    error: str = ""
    retry_after: float | None = None


async def post(http: httpx.AsyncClient, subscriber: Subscriber, msg_id: str, body: bytes,
               *, timeout_seconds: float, now: datetime | None = None) -> Attempt:
    """One signed POST; its outcome (never raises for what the subscriber does)."""
    now = now or datetime.now(UTC)
    headers = signed_headers(subscriber.secrets, msg_id, body, now)
    try:
        response = await http.post(subscriber.url, content=body, headers=headers,
                                   timeout=timeout_seconds)
    except httpx.HTTPError as exc:  # the URL may hold a token: only the error's kind is kept
        return Attempt(error=type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Attempt(ok=True)
    if response.status_code == 410:
        return Attempt(gone=True, error="HTTP 410")
    return Attempt(error=f"HTTP {response.status_code}",
                   retry_after=retry_after(response.headers.get("retry-after"), now))


class LeaseLost(Exception):
    """Another worker holds the subscriber now (this one stalled past its lease)."""


class Deliverer:
    """One subscriber's deliveries in this worker (``run`` until ``stop``)."""

    def __init__(
        self, subscriber: Subscriber, settings: Settings, redis: Redis, store: StoreRunner,
        http: httpx.AsyncClient, *, refreshable: Container[str] = frozenset(),
        rng: random.Random | None = None, owner: str | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.name = subscriber.name
        self.redis = redis
        self.store = store
        self.http = http
        self.refreshable = refreshable
        self.rng = rng or random.Random()
        self.owner = owner or f"{consumer_name()}-{id(self):x}"
        self.backoff = Backoff(settings.subscriber_backoff_ms / 1000,
                               float(settings.subscriber_backoff_max_seconds))
        self.horizon_ms = settings.subscriber_retry_seconds * 1000
        self.timeout = float(settings.subscriber_timeout_seconds)
        self.lease_ms = settings.subscriber_lease_seconds * 1000
        self._stopping = asyncio.Event()
        self._held = False

    def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on ``stop``; raises ``LeaseLost`` once the lease is gone."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, seconds))
        if not self._held:
            raise LeaseLost

    async def run(self) -> None:
        """Take the lease when free, deliver while holding it; again after losing it."""
        while not self._stopping.is_set():
            try:
                if await self.redis.set(lease_key(self.name), self.owner, nx=True,
                                        px=self.lease_ms):
                    await self._holding()
            except (RedisError, OSError) as exc:
                log.warning("subscriber_redis_unavailable", subscriber=self.name,
                            error_type=type(exc).__name__)
            except Exception as exc:  # never end the task: deliveries would stop silently
                log.error("subscriber_delivery_crashed", subscriber=self.name,
                          error_type=type(exc).__name__)
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(),
                                           timeout=min(1.0, self.lease_ms / 3000))

    async def _holding(self) -> None:
        self._held = True
        log.info("subscriber_claimed", subscriber=self.name, url=self.subscriber.shown_url)
        delivering = asyncio.create_task(self._deliver_log(), name=f"subscriber-{self.name}")
        try:
            while not delivering.done():
                done, _ = await asyncio.wait({delivering}, timeout=self.lease_ms / 3000)
                if done:
                    break
                if not await self.redis.eval(_REFRESH, 1, lease_key(self.name),  # type: ignore[misc]
                                             self.owner, str(self.lease_ms)):
                    log.warning("subscriber_lease_lost", subscriber=self.name)
                    self._held = False
                    delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                await delivering
        finally:
            self._held = False
            if not delivering.done():
                delivering.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                    await delivering
            with contextlib.suppress(RedisError, OSError):
                await self.redis.eval(_RELEASE, 1, lease_key(self.name), self.owner)  # type: ignore[misc]

    async def _deliver_log(self) -> None:
        await self.store.run(lambda store: cursors.ensure(store, [self.name]))
        while not self._stopping.is_set():
            try:
                await self._round()
            except StoreBusy as exc:
                log.warning("subscriber_store_busy", subscriber=self.name,
                            error_type=type(exc).__name__)
                await self._sleep(1.0)

    async def _round(self) -> None:
        """Deliver what the log holds after the cursor (a batch of it), or wait a moment."""
        cursor = await self.store.run(lambda store: cursors.cursor(store, self.name))
        if cursor is None:
            await self.store.run(lambda store: cursors.ensure(store, [self.name]))
            return
        if cursor["disabled_at"] is not None:
            if cursor["disabled_url"] != url_digest(self.subscriber.url):
                await self.store.run(lambda store: cursors.enable(store, self.name))
                log.info("subscriber_enabled", subscriber=self.name, reason="url changed")
            else:
                metrics.subscriber_state(self.name, disabled=True)
                await self._sleep(IDLE_SECONDS * 4)
            return
        metrics.subscriber_state(self.name, disabled=False)
        expected = int(cursor["seq"])
        changes, head = await self.store.run(lambda store: (
            cursors.changes_after(store, expected, BATCH), cursors.head(store)))
        metrics.subscriber_lag(self.name, max(0, head - expected),
                               changes[0]["changed_at"] if changes else None)
        if not changes:
            await self._sleep(IDLE_SECONDS)
            return
        skipped: int | None = None
        for change in changes:
            if not self._held or self._stopping.is_set():
                return
            if not self.subscriber.wants(change["provider"], change["account"],
                                         change["entity"]):
                skipped = change["seq"]
                continue
            if skipped is not None:
                if not await self._advance(expected, skipped, sent=False):
                    return
                expected = skipped
                skipped = None
            if not await self._deliver(change, expected):
                return  # the cursor moved, or the subscriber was disabled: read it again
            expected = change["seq"]
        if skipped is not None:
            await self._advance(expected, skipped, sent=False)

    async def _advance(self, expected: int, seq: int, *, sent: bool) -> bool:
        return await self.store.run(
            lambda store: cursors.advance(store, self.name, expected, seq, sent=sent))

    async def _deliver(self, change: dict[str, Any], expected: int) -> bool:
        """Send one change until acknowledged or given up on; whether the cursor moved past
        it (False: something else moved it, or the subscriber is disabled now)."""
        seq = int(change["seq"])
        msg_id = webhook_id(self.name, seq)

        def view(store: Store) -> Any:
            return entity_view(store, change["entity"], change["provider"],
                               change["appointment_id"], change["entity_id"], self.refreshable)

        data = await self.store.run(view)
        if not self.subscriber.gets_credentials:
            data = without_credentials(data)
        body = payload(self.name, change, data)
        attempt = 0
        while True:
            if not self._held:
                raise LeaseLost
            if self._stopping.is_set():
                return False
            result = await post(self.http, self.subscriber, msg_id, body,
                                timeout_seconds=self.timeout)
            if result.ok:
                metrics.subscriber_sent(self.name)
                return await self._advance(expected, seq, sent=True)
            metrics.subscriber_failed(self.name)
            if result.gone:
                await self.store.run(lambda store: cursors.disable(
                    store, self.name, "410 Gone", url_digest(self.subscriber.url)))
                log.warning("subscriber_disabled", subscriber=self.name, seq=seq,
                            reason="the subscriber answered 410 Gone",
                            fix=f"meetsync subscribers test {self.name}")
                return False
            now_ms = int(time.time() * 1000)
            error = result.error
            failing = await self.store.run(
                lambda store, at=now_ms, error=error: cursors.failed(  # type: ignore[misc]
                    store, self.name, expected, at, error))
            if failing is None:
                return False
            since_ms, attempt = failing
            if now_ms - since_ms >= self.horizon_ms:
                gave_up = await self.store.run(
                    lambda store, error=error: cursors.give_up(  # type: ignore[misc]
                        store, self.name, expected, seq, msg_id, error))
                log.error("subscriber_dead_letter", subscriber=self.name, seq=seq,
                          attempts=attempt, error=result.error)
                return gave_up
            delay = self.backoff.delay(attempt, result.retry_after, self.rng)
            remaining = (since_ms + self.horizon_ms - now_ms) / 1000
            log.info("subscriber_retry", subscriber=self.name, seq=seq, attempt=attempt,
                     error=result.error, delay=round(delay, 3))
            await self._sleep(min(delay, max(remaining, 0.0)))


class Deliveries:
    """Every configured subscriber's ``Deliverer``, each in a task of its own."""

    def __init__(self, settings: Settings, redis: Redis, store: StoreRunner, *,
                 refreshable: Container[str] = frozenset()) -> None:
        self.http = httpx.AsyncClient(follow_redirects=False)
        self.deliverers = [Deliverer(s, settings, redis, store, self.http,
                                     refreshable=refreshable) for s in settings.subscribers]
        self.tasks = [asyncio.create_task(d.run(), name=f"subscriber-{d.name}")
                      for d in self.deliverers]

    async def stop(self) -> None:
        for deliverer in self.deliverers:
            deliverer.stop()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()


async def send_test(subscriber: Subscriber, *, timeout_seconds: float = 10) -> Attempt:
    """``meetsync subscribers test``: one signed ``meetsync.test`` POST (no change in it)."""
    now = datetime.now(UTC)
    msg_id = f"msg_{subscriber.name}_test_{int(now.timestamp() * 1000)}"
    body = orjson.dumps({"id": msg_id, "type": "meetsync.test", "seq": None, "provider": None,
                         "account": None, "appointment_id": None,
                         "changed_at": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                         "data": None})
    async with httpx.AsyncClient(follow_redirects=False) as http:
        return await post(http, subscriber, msg_id, body, timeout_seconds=timeout_seconds,
                          now=now)


__all__ = [
    "Attempt",
    "Backoff",
    "Deliverer",
    "Deliveries",
    "lease_key",
    "payload",
    "post",
    "retry_after",
    "send_test",
    "signed_headers",
    "url_digest",
    "webhook_id",
    "without_credentials",
]
