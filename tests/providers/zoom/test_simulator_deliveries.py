"""Zoom deliveries: envelope shapes, v0 signatures checked independently, chaos, determinism."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meetsync.providers.zoom.simulator import (
    ZoomDelivery,
    ZoomSim,
    expected_validation_reply,
    played_until,
)
from meetsync.simulator import Chaos, ManualClock, deliver, serve_in_background

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def verify(body: bytes, headers: dict[str, str], secret: str) -> bool:
    """Zoom's v0 scheme, written out here rather than imported."""
    stamp = headers["x-zm-request-timestamp"]
    message = f"v0:{stamp}:".encode() + body
    expected = "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-zm-signature"], expected)


def test_lifecycle_payload_shapes() -> None:
    sim = ZoomSim(3, start=START)
    created = sim.create(start_time=START + timedelta(days=1), duration=30, topic="Standup")
    meeting_id = created.meeting_id
    assert meeting_id is not None
    updated = sim.update(meeting_id, duration=45, topic="Standup (moved)")
    started = sim.start(meeting_id)
    ended = sim.end(meeting_id)
    deleted = sim.delete(meeting_id)

    c = created.envelope()
    assert set(c) == {"event", "event_ts", "payload"} and c["event"] == "meeting.created"
    assert {"account_id", "operator", "operator_id", "object"} <= set(c["payload"])
    assert c["payload"]["object"]["id"] == meeting_id and isinstance(meeting_id, int)
    assert c["payload"]["object"]["start_time"] == "2026-12-02T15:00:00Z"
    assert "start_url" not in c["payload"]["object"]

    u = updated.envelope()["payload"]
    assert u["object"] == {"id": meeting_id, "duration": 45, "topic": "Standup (moved)"}
    assert u["old_object"] == {"id": meeting_id, "duration": 30, "topic": "Standup"}
    assert isinstance(u["time_stamp"], int) and u["time_stamp"] <= updated.event_ts

    for delivery in (started, ended):
        obj = delivery.envelope()["payload"]["object"]
        assert obj["id"] == str(meeting_id)
        assert {"uuid", "host_id", "topic", "type", "start_time", "timezone", "duration"} <= set(
            obj
        )
        assert "operator" not in delivery.envelope()["payload"]
    assert "end_time" in ended.envelope()["payload"]["object"]
    assert deleted.envelope()["payload"]["object"]["id"] == meeting_id
    assert meeting_id not in sim.meetings
    stamps = [d.event_ts for d in sim.history]
    assert stamps == sorted(stamps)


def test_password_update_rotates_the_join_url() -> None:
    sim = ZoomSim(4, start=START)
    meeting_id = sim.create().meeting_id
    assert meeting_id is not None
    payload = sim.update(meeting_id, password="n3wPass").envelope()["payload"]
    assert set(payload["object"]) == {"id", "password", "join_url"}
    assert payload["object"]["join_url"] != payload["old_object"]["join_url"]


def test_headers_sign_the_exact_bytes() -> None:
    sim = ZoomSim(5, start=START)
    delivery = sim.play(3)[0]
    secret = sim.account.secret_token
    headers = delivery.headers(secret, timestamp=1_700_000_000)
    assert headers["x-zm-request-timestamp"] == "1700000000"
    assert verify(delivery.body, headers, secret)
    assert not verify(delivery.body + b" ", headers, secret)
    assert not verify(delivery.body, headers, "other-secret")
    now = int(time.time())
    live = sim.signer()(delivery)
    assert abs(int(live["x-zm-request-timestamp"]) - now) <= 2 and verify(
        delivery.body, live, secret
    )


def test_url_validation_challenge_and_reply() -> None:
    sim = ZoomSim(6, start=START)
    challenge = sim.url_validation(plain_token="qgg8vlvZRS6UYooatFL8Aw")
    body = challenge.envelope()
    assert body["event"] == "endpoint.url_validation"
    assert body["payload"] == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}
    assert isinstance(body["event_ts"], int)
    secret = sim.account.secret_token
    assert verify(challenge.body, challenge.headers(secret), secret)
    reply = expected_validation_reply(secret, "qgg8vlvZRS6UYooatFL8Aw")
    digest = hmac.new(secret.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert reply == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": digest}
    assert challenge not in sim.history


class Receiver:
    """A webhook endpoint that checks Zoom signatures on its own."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.accepted: list[bytes] = []
        self.rejected = 0

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        if not verify(body, dict(request.headers), self.secret):
            self.rejected += 1
            return Response(status_code=401)
        self.accepted.append(body)
        return Response(status_code=200)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhooks/zoom", self.endpoint, methods=["POST"])])


async def test_deliver_with_chaos_over_http() -> None:
    sim = ZoomSim(7, start=START)
    deliveries = sim.play(60)
    receiver = Receiver(sim.account.secret_token)
    chaos = Chaos(drop=0.1, duplicate=0.2, reorder_window=10)
    with serve_in_background(receiver.app()) as root:
        report = await deliver(
            deliveries, f"{root}/webhooks/zoom", signer=sim.signer(), chaos=chaos, seed=2
        )
    assert report.dropped > 0 and report.duplicated > 0
    assert report.accepted == report.sent == len(receiver.accepted) and receiver.rejected == 0
    counts = Counter(receiver.accepted)
    assert sum(1 for n in counts.values() if n > 1) == report.duplicated
    assert len(counts) == len(deliveries) - report.dropped
    order = [d.body for d in deliveries]
    assert receiver.accepted != [b for b in order if b in counts]


def test_workload_mixes_every_event() -> None:
    sim = ZoomSim(8, start=START, accounts=2)
    events = Counter(d.event for d in sim.play(300))
    assert set(events) == {"meeting.created", "meeting.updated", "meeting.started",
                           "meeting.ended", "meeting.deleted"}  # fmt: skip
    assert events["meeting.created"] == 300
    assert {m["type"] for m in sim.meetings.values()} == {2, 8}
    assert len({m["_account_id"] for m in sim.meetings.values()}) == 2


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40))
def test_same_seed_plays_byte_identical(seed: int, n: int) -> None:
    first = ZoomSim(seed, start=START, clock=ManualClock()).play(n)
    second_sim = ZoomSim(seed, start=START, clock=ManualClock())
    # API-side randomness must not change what the seed plays.
    second_sim.url_validation()
    second = second_sim.play(n)
    assert [d.body for d in first] == [d.body for d in second]
    assert all(isinstance(orjson.loads(d.body)["event_ts"], int) for d in first)


def test_played_until_ends_at_end() -> None:
    end = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    sim, deliveries = played_until(end, 9, lambda s: s.play(50))
    assert sim.now == end
    assert all(isinstance(d, ZoomDelivery) for d in deliveries)
    assert deliveries[-1].event_ts // 1000 <= int(end.timestamp()) + 1


async def test_signed_delivery_reaches_an_asgi_transport() -> None:
    sim = ZoomSim(10, start=START)
    receiver = Receiver(sim.account.secret_token)
    deliveries = sim.play(5)
    transport = httpx.ASGITransport(app=receiver.app())
    report = await deliver(
        deliveries, "http://receiver/webhooks/zoom", signer=sim.signer(),
        chaos=Chaos(drop=0, duplicate=0, reorder=False), transport=transport,
    )  # fmt: skip
    assert report.accepted == report.total == len(deliveries)
    assert sorted(receiver.accepted) == sorted(d.body for d in deliveries)
