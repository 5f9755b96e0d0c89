"""POST /webhooks/savvycal answers every contract status and queues exactly the verified events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.routing import Route
from structlog.testing import capture_logs

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.queue import STATS
from meetsync.settings import Settings
from meetsync.webhooks import create_app
from meetsync.webhooks.receiver import MAX_BODY_BYTES, Receiver
from tests.helpers.savvycal import savvycal_settings

if TYPE_CHECKING:
    from tests.providers.savvycal.samples import Samples

Queued = Callable[[], Awaitable[list[Event]]]
URL = "/webhooks/savvycal"


async def test_natively_signed_delivery_is_queued(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    body = samples.body()
    response = await client.post(URL, content=body, headers=samples.native_headers(body))
    assert response.status_code == 202
    assert response.json() == {"status": "queued", "id": "evt_0001"}
    [event] = await queued()
    assert event.id == "evt_0001" and event.appointment_id == "appt_a1b2c3d4e5f6"
    assert event.meeting is not None and event.meeting.host_url == samples.host_url


@pytest.mark.parametrize("prefix", ["webhook-", "svix-"])
async def test_standard_webhooks_delivery_is_queued(
    client: httpx.AsyncClient, samples: Samples, queued: Queued, prefix: str
) -> None:
    body = samples.body(type="appointment.meeting.replaced")
    headers = samples.standard_headers(body, prefix=prefix)
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 202
    assert [event.type for event in await queued()] == ["appointment.meeting.replaced"]


async def test_a_duplicate_delivery_is_accepted_and_queued_again(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    body = samples.body()
    for _ in range(2):
        response = await client.post(URL, content=body, headers=samples.native_headers(body))
        assert response.status_code == 202
    # Deduplication is the store's job (its inbox), not the receiver's.
    assert [event.id for event in await queued()] == ["evt_0001", "evt_0001"]


async def test_an_unknown_event_type_is_counted_and_ignored(
    client: httpx.AsyncClient, samples: Samples, queued: Queued, redis: aioredis.Redis
) -> None:
    body = samples.body(type="poll.response.created", obj={"id": "poll_1"})
    response = await client.post(URL, content=body, headers=samples.native_headers(body))
    assert response.status_code == 202
    assert response.json() == {"status": "ignored"}
    # One field for every ignored type: a field per name is state any sender could grow.
    assert await redis.hgetall(STATS) == {b"ignored_types": b"1"}  # type: ignore[misc]
    assert await queued() == []


def without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return data


@pytest.mark.parametrize(
    "make_body",
    [
        lambda s: b"this is not json",
        lambda s: b"[1, 2, 3]",
        lambda s: orjson.dumps(without(s.envelope(), "id")),
        lambda s: orjson.dumps(without(s.envelope(), "created_at")),
        lambda s: orjson.dumps(without(s.envelope(), "data", "type")),
        lambda s: orjson.dumps(without(s.envelope(), "data", "object")),
        lambda s: s.body(obj=s.appointment(meeting={"id": 5, "status": "created"})),
        lambda s: s.body(obj=s.appointment(meeting=["amtg_a1b2c3d4e5f6"])),
    ],
    ids=[
        "not-json",
        "json-array",
        "no-id",
        "no-created_at",
        "no-type",
        "no-object",
        "meeting-id",
        "meeting-list",
    ],
)
async def test_a_signed_body_that_is_not_an_envelope_is_400(
    client: httpx.AsyncClient,
    samples: Samples,
    queued: Queued,
    make_body: Callable[[Samples], bytes],
) -> None:
    body = make_body(samples)
    response = await client.post(URL, content=body, headers=samples.native_headers(body))
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert await queued() == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-savvycal-signature": "sha256=00"},
        {"x-savvycal-signature": "garbage"},
        {"webhook-signature": "v1,AAAA"},
        {"svix-id": "msg_1", "svix-timestamp": "now", "svix-signature": "v1,%%%"},
        {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
    ],
    ids=["missing", "short-hex", "no-prefix", "std-partial", "svix-garbage", "std-too-old"],
)
async def test_unsigned_or_garbage_signed_deliveries_are_401(
    client: httpx.AsyncClient, samples: Samples, queued: Queued, headers: dict[str, str]
) -> None:
    response = await client.post(URL, content=samples.body(), headers=headers)
    assert response.status_code == 401
    assert await queued() == []


async def test_a_delivery_signed_with_another_secret_is_401(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    body = samples.body()
    response = await client.post(URL, content=body, headers=samples.native_headers(body, "nope"))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid signature"}
    assert await queued() == []


async def test_a_scheme_without_a_configured_secret_is_401(
    db_path: Path, redis: aioredis.Redis, samples: Samples, queued: Queued
) -> None:
    settings = savvycal_settings(db_path=str(db_path), savvycal_webhook_secrets=("only-native",))
    app = create_app(settings, redis=redis)
    body = samples.body()
    async with _client(app) as client:
        response = await client.post(URL, content=body, headers=samples.standard_headers(body))
    assert response.status_code == 401
    assert await queued() == []


async def test_a_body_of_exactly_one_mebibyte_is_accepted(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    envelope = samples.body()
    body = envelope + b" " * (MAX_BODY_BYTES - len(envelope))
    response = await client.post(URL, content=body, headers=samples.native_headers(body))
    assert response.status_code == 202
    assert len(await queued()) == 1


async def test_a_declared_oversized_body_is_413(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    response = await client.post(URL, content=body, headers=samples.native_headers(body))
    assert response.status_code == 413
    assert await queued() == []


@pytest.mark.parametrize("declared", [b"\xb2", b"-1", b"abc", b"1" * 30])
async def test_a_nonsense_content_length_is_not_an_error(
    client: httpx.AsyncClient, samples: Samples, declared: bytes
) -> None:
    body = samples.body()
    headers: dict[str, str | bytes] = {**samples.native_headers(body), "content-length": declared}
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code in {202, 413}


async def test_a_streamed_oversized_body_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    chunk = b" " * 65_536
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(128):  # 8 MiB on offer
            sent += len(chunk)
            yield chunk

    response = await client.post(URL, content=chunks(), headers={"x-savvycal-signature": "x"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert sent <= MAX_BODY_BYTES + len(chunk)
    assert await queued() == []


async def test_redis_down_is_503_with_retry_after(
    tmp_path: Path, settings: Settings, samples: Samples
) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", persistent=False).start()
    redis = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    try:
        app = create_app(settings, redis=redis)
        server.stop()
        body = samples.body()
        async with _client(app) as client:
            queued_response = await client.post(
                URL, content=body, headers=samples.native_headers(body)
            )
            ignored = samples.body(type="poll.created", obj={})
            ignored_response = await client.post(
                URL, content=ignored, headers=samples.native_headers(ignored)
            )
    finally:
        server.stop()
        await redis.aclose()
    for response in (queued_response, ignored_response):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json() == {"error": "queue unavailable"}


async def test_an_unknown_provider_is_404(client: httpx.AsyncClient, samples: Samples) -> None:
    response = await client.post("/webhooks/calendly", content=samples.body())
    assert response.status_code == 404


async def test_the_read_api_is_served_by_the_same_app(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/meetings/amtg_a1b2c3d4e5f6")
    assert response.status_code == 401


async def test_the_app_builds_and_closes_its_own_redis_client(
    settings: Settings, redis_server: RedisServer, samples: Samples, queued: Queued
) -> None:
    app = create_app(Settings(**{**_fields(settings), "redis_url": redis_server.url}))
    body = samples.body()
    async with app.router.lifespan_context(app), _client(app) as client:
        response = await client.post(URL, content=body, headers=samples.native_headers(body))
    assert response.status_code == 202
    assert len(await queued()) == 1


async def test_logs_name_the_outcome_and_never_carry_credentials(
    client: httpx.AsyncClient, samples: Samples
) -> None:
    body = samples.body()
    with capture_logs() as logs:
        await client.post(URL, content=body, headers=samples.native_headers(body))
        await client.post(URL, content=body, headers={"x-savvycal-signature": "sha256=AB"})
    assert [entry["event"] for entry in logs] == ["webhook_queued", "webhook_rejected"]
    assert logs[1]["reason"] == "signature"
    text = repr(logs)
    assert samples.host_url not in text and "abc123" not in text
    assert samples.native_secret not in text


class BrokenProvider:
    """A provider with a bug: the receiver must still answer, and log the error's type only."""

    name = "broken"

    def verify(self, body: bytes, headers: object, account: str | None = None) -> str:
        raise KeyError("secret detail")

    def parse(self, body: bytes, account: str) -> Event | str:
        raise AssertionError("unreachable")


async def test_an_unexpected_error_is_a_logged_503_not_a_500(redis: aioredis.Redis) -> None:
    receiver = Receiver({"broken": BrokenProvider()}, redis)
    app = Starlette(routes=[Route("/webhooks/{provider}", receiver.endpoint, methods=["POST"])])
    with capture_logs() as logs:
        async with _client(app) as client:
            response = await client.post("/webhooks/broken", content=b"{}")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert logs == [
        {
            "event": "webhook_unexpected_error",
            "log_level": "error",
            "provider": "broken",
            "error_type": "KeyError",
        }
    ]


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.__dataclass_fields__}


async def test_a_delivery_posted_to_its_account_path_is_queued_for_that_account(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    body = samples.body()
    response = await client.post(f"{URL}/default", content=body,
                                 headers=samples.native_headers(body))
    assert response.status_code == 202
    assert [event.account for event in await queued()] == ["default"]


async def test_a_delivery_signed_for_another_account_than_its_path_is_401(
    client: httpx.AsyncClient, samples: Samples, queued: Queued
) -> None:
    body = samples.body()
    response = await client.post(f"{URL}/other", content=body,
                                 headers=samples.native_headers(body))
    assert response.status_code == 401
    assert "another account" in response.json()["error"]
    assert await queued() == []


async def test_the_route_answers_as_the_direct_path_does(
    app: Starlette, samples: Samples, queued: Queued
) -> None:
    """Under a root path a delivery goes through Starlette's router to the same receiver: the
    same statuses, bodies and headers as the path taken before the router (webhooks/app.py)."""
    body = samples.body()
    cases = [
        ("/webhooks/savvycal", samples.native_headers(body)),
        ("/webhooks/savvycal", {"x-savvycal-signature": "sha256=AB"}),
        ("/webhooks/nobody", samples.native_headers(body)),
        ("/webhooks/savvycal/nobody", samples.native_headers(body)),
    ]
    answers = []
    for root in ("", "/base"):
        transport = httpx.ASGITransport(app=app, root_path=root)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path, headers in cases:
                response = await client.post(root + path, content=body, headers=headers)
                answers.append((response.status_code, response.content,
                                sorted(response.headers.items())))
    assert answers[:len(cases)] == answers[len(cases):]
    assert [status for status, _, _ in answers[:len(cases)]] == [202, 401, 404, 401]
    assert len(await queued()) == 2
