"""Delivering envelopes to a receiver like an imperfect sender: lost, doubled, out of order.

Chaos is decided up front from ``seed`` (which deliveries are dropped, which doubled, the send
order); concurrency then adds the ordinary disorder of parallel POSTs. A POST answered 5xx or
failing to connect is retried a few times with a short backoff, as a real sender would (with
the same event id, hence the same ``webhook-id``). Several receivers' URLs spread the
deliveries round-robin, as a load balancer would; a retry goes to the next receiver, so one that
is down (connection refused or reset) costs a delivery one extra attempt (a failover).

Any provider's deliveries can ride on it: anything with an ``event_id`` and the ``body`` bytes,
signed per attempt by the provider simulator's ``signer`` (e.g. Zoom's timestamped
``x-zm-signature``, SavvyCal's ``x-savvycal-signature``, or no signature for Avon).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httpx


class Sendable(Protocol):
    """What ``deliver`` needs of a delivery: a stable id (shared by duplicates) and the bytes."""

    @property
    def event_id(self) -> str: ...

    @property
    def body(self) -> bytes: ...


D = TypeVar("D", bound=Sendable)
# The signature headers for one POST attempt of one delivery.
Signer = Callable[[D], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class Chaos:
    """What goes wrong between the provider and the receiver."""

    drop: float = 0.1
    duplicate: float = 0.1
    reorder: bool = True
    reorder_window: int = 50
    delay_ms: int = 0


@dataclass(slots=True)
class DeliveryReport:
    """Counts that add up: ``sent == total - dropped + duplicated``, and every POST sent ends
    ``accepted`` (2xx), in ``rejected`` (final status → count) or ``failed`` (no answer).
    ``failovers``: attempts sent to another receiver after one could not be reached;
    ``accepted_event_ids``: the events at least one of whose POSTs was answered 2xx."""

    total: int = 0
    dropped: int = 0
    duplicated: int = 0
    sent: int = 0
    attempts: int = 0
    accepted: int = 0
    failed: int = 0
    failovers: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    dropped_event_ids: list[str] = field(default_factory=list)
    accepted_event_ids: set[str] = field(default_factory=set)


def plan(
    deliveries: Sequence[D], chaos: Chaos, rng: random.Random
) -> tuple[list[D], list[str], int]:
    """The send order after drops, duplicates and bounded reordering."""
    kept: list[D] = []
    dropped: list[str] = []
    duplicated = 0
    for delivery in deliveries:
        if rng.random() < chaos.drop:
            dropped.append(delivery.event_id)
            continue
        kept.append(delivery)
        if rng.random() < chaos.duplicate:
            kept.append(delivery)
            duplicated += 1
    if chaos.reorder and chaos.reorder_window > 1:
        # Each item moves at most about reorder_window places from where it was.
        keyed = [(i + rng.uniform(0, chaos.reorder_window), i) for i in range(len(kept))]
        kept = [kept[i] for _, i in sorted(keyed)]
    return kept, dropped, duplicated


async def deliver(
    deliveries: Sequence[D],
    url: str | Sequence[str],
    *,
    signer: Signer[D],
    chaos: Chaos | None = None,
    seed: int = 0,
    concurrency: int = 32,
    transport: httpx.AsyncBaseTransport | None = None,
    max_attempts: int = 4,
    backoff: float = 0.05,
    request_timeout: float = 10.0,
) -> DeliveryReport:
    """POST ``deliveries`` to ``url`` (or round-robin over several), each attempt signed by
    ``signer``; ``transport`` may be an ASGI app's."""
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("no url to deliver to")
    chaos = chaos or Chaos()
    rng = random.Random(seed)
    order, dropped, duplicated = plan(deliveries, chaos, rng)
    delays = [rng.uniform(0, chaos.delay_ms) / 1000 if chaos.delay_ms else 0.0 for _ in order]
    report = DeliveryReport(
        total=len(deliveries),
        dropped=len(dropped),
        duplicated=duplicated,
        sent=len(order),
        dropped_event_ids=dropped,
    )
    gate = asyncio.Semaphore(concurrency)

    async def post(client: httpx.AsyncClient, n: int, delivery: D, delay: float) -> None:
        async with gate:
            if delay:
                await asyncio.sleep(delay)
            status: int | None = None
            for attempt in range(max_attempts):
                if attempt:
                    await asyncio.sleep(backoff * 2 ** (attempt - 1))
                    if status is None and len(urls) > 1:
                        report.failovers += 1
                headers = dict(signer(delivery))
                headers["content-type"] = "application/json"
                report.attempts += 1
                try:
                    response = await client.post(
                        urls[(n + attempt) % len(urls)], content=delivery.body, headers=headers)
                except httpx.TransportError:
                    status = None
                    continue
                status = response.status_code
                if status < 500:
                    break
            if status is None:
                report.failed += 1
            elif 200 <= status < 300:
                report.accepted += 1
                report.accepted_event_ids.add(delivery.event_id)
            else:
                report.rejected[status] += 1

    async with httpx.AsyncClient(transport=transport, timeout=request_timeout) as client:
        posts = (post(client, n, d, delay)
                 for n, (d, delay) in enumerate(zip(order, delays, strict=True)))
        await asyncio.gather(*posts)
    return report
