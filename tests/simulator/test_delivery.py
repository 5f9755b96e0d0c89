"""Delivery applies chaos whose counts add up, retries 5xx, fails over between receivers, and signs
so independent checks pass."""

from __future__ import annotations

import hashlib
import hmac
import random
import socket
from collections import Counter
from datetime import UTC, datetime

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from svix.webhooks import Webhook, WebhookVerificationError

from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim, signer
from meetsync.simulator import Chaos, deliver, serve_in_background
from meetsync.simulator.delivery import plan

NATIVE_SECRET = "native-secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DELIVERIES = SavvyCalSim(8, start=datetime(2025, 3, 1, 15, tzinfo=UTC)).play(40)


class Receiver:
    """A webhook endpoint that checks signatures on its own and records what it accepted."""

    def __init__(self, *, fail_first_attempts: bool = False) -> None:
        self.accepted: list[str] = []
        self.tries: Counter[str] = Counter()
        self.fail_first_attempts = fail_first_attempts

    def verified(self, body: bytes, headers: dict[str, str]) -> bool:
        if "x-savvycal-signature" in headers:
            expected = hmac.new(NATIVE_SECRET.encode(), body, hashlib.sha256).hexdigest().upper()
            given = headers["x-savvycal-signature"]
            return headers["x-savvycal-webhook-id"].startswith("wh_") and hmac.compare_digest(
                given, f"sha256={expected}"
            )
        try:
            Webhook(STANDARD_SECRET).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        event_id = httpx.Response(200, content=body).json()["id"]
        self.tries[event_id] += 1
        if self.fail_first_attempts and self.tries[event_id] % 2:
            return Response(status_code=503)
        if not self.verified(body, dict(request.headers)):
            return Response(status_code=401)
        self.accepted.append(event_id)
        return Response(status_code=202)

    def transport(self) -> httpx.AsyncBaseTransport:
        app = Starlette(routes=[Route("/webhooks/savvycal", self.endpoint, methods=["POST"])])
        return httpx.ASGITransport(app=app)


URL = "http://receiver/webhooks/savvycal"


async def test_chaos_counts_add_up() -> None:
    receiver = Receiver()
    chaos = Chaos(drop=0.2, duplicate=0.25, reorder_window=10)
    report = await deliver(
        DELIVERIES, URL, signer=signer("native", NATIVE_SECRET), chaos=chaos, seed=5,
        transport=receiver.transport(),
    )  # fmt: skip
    assert report.total == len(DELIVERIES)
    assert report.dropped > 0 and report.duplicated > 0
    assert report.sent == report.total - report.dropped + report.duplicated
    assert report.accepted == report.sent and not report.rejected and not report.failed
    assert report.attempts == report.sent
    received = Counter(receiver.accepted)
    assert not set(report.dropped_event_ids) & set(received)
    assert set(received) | set(report.dropped_event_ids) == {d.event_id for d in DELIVERIES}
    assert sum(count - 1 for count in received.values()) == report.duplicated


async def test_standard_webhooks_signatures_verify_with_svix() -> None:
    receiver = Receiver()
    report = await deliver(
        DELIVERIES, URL, signer=signer("standard", STANDARD_SECRET),
        chaos=Chaos(drop=0, duplicate=0), transport=receiver.transport(),
    )  # fmt: skip
    assert report.accepted == len(DELIVERIES) == len(set(receiver.accepted))


async def test_a_wrong_secret_is_rejected_and_counted() -> None:
    report = await deliver(
        DELIVERIES[:10], URL, signer=signer("native", "not-the-secret"),
        chaos=Chaos(drop=0, duplicate=0), transport=Receiver().transport(),
    )  # fmt: skip
    assert report.rejected == Counter({401: 10}) and report.accepted == 0


async def test_5xx_is_retried_like_a_real_sender() -> None:
    receiver = Receiver(fail_first_attempts=True)
    report = await deliver(
        DELIVERIES[:12], URL, signer=signer("native", NATIVE_SECRET),
        chaos=Chaos(drop=0, duplicate=0), transport=receiver.transport(), backoff=0.001,
    )  # fmt: skip
    assert report.accepted == 12 and report.attempts == 24
    assert sorted(receiver.accepted) == sorted(d.event_id for d in DELIVERIES[:12])


async def test_unreachable_receiver_counts_failures() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = await deliver(
        DELIVERIES[:3], f"http://127.0.0.1:{port}/", signer=signer("native", NATIVE_SECRET),
        chaos=Chaos(drop=0, duplicate=0), max_attempts=2, backoff=0.001,
    )  # fmt: skip
    assert (report.failed, report.attempts, report.accepted) == (3, 6, 0)


async def test_deliveries_spread_over_receivers_and_fail_over_from_a_dead_one() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    with serve_in_background(app) as root:
        report = await deliver(
            DELIVERIES[:20], [f"{root}/hook", dead], signer=signer("native", NATIVE_SECRET),
            chaos=Chaos(drop=0, duplicate=0, reorder=False), backoff=0.001,
        )  # fmt: skip
    # Every other delivery went to the dead receiver first, and once more to the live one.
    assert (report.accepted, report.failed, report.failovers, report.attempts) == (20, 0, 10, 30)
    assert report.accepted_event_ids == {d.event_id for d in DELIVERIES[:20]}
    assert sorted(receiver.accepted) == sorted(report.accepted_event_ids)


async def test_delivers_over_real_http() -> None:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    with serve_in_background(app) as root:
        report = await deliver(
            DELIVERIES[:20], f"{root}/hook", signer=signer("standard", STANDARD_SECRET),
            chaos=Chaos(drop=0, duplicate=0.5), seed=2, concurrency=4,
        )  # fmt: skip
    assert report.accepted == report.sent == 20 + report.duplicated


def deliveries(count: int) -> list[Delivery]:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return [
        Delivery(f"evt_{i:012d}", "appointment.created", "appt_x", now, b"{}") for i in range(count)
    ]


@settings(max_examples=50, deadline=None)
@given(
    count=st.integers(0, 200),
    drop=st.floats(0, 1),
    duplicate=st.floats(0, 1),
    window=st.integers(0, 60),
    seed=st.integers(0, 2**32),
)
def test_the_chaos_plan_keeps_its_books(
    count: int, drop: float, duplicate: float, window: int, seed: int
) -> None:
    chaos = Chaos(drop=drop, duplicate=duplicate, reorder_window=window)
    order, dropped, duplicated = plan(deliveries(count), chaos, random.Random(seed))
    assert len(order) == count - len(dropped) + duplicated
    sent = Counter(d.event_id for d in order)
    assert all(1 <= n <= 2 for n in sent.values())
    assert set(sent) | set(dropped) == {f"evt_{i:012d}" for i in range(count)}
    assert not set(sent) & set(dropped)
    positions = {d.event_id: i for i, d in enumerate(order)}
    original = sorted(positions, key=lambda e: int(e[4:]))
    assert all(
        abs(positions[e] - rank) <= max(window, 1) + duplicated for rank, e in enumerate(original)
    )
    again = plan(deliveries(count), chaos, random.Random(seed))
    assert [d.event_id for d in again[0]] == [d.event_id for d in order]
