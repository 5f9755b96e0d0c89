"""No body or header value makes the receiver answer 5xx, and only signed deliveries are queued."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import redis.asyncio as aioredis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from meetsync.queue import EVENT_STREAM

if TYPE_CHECKING:
    from tests.providers.savvycal.samples import Samples

URL = "/webhooks/savvycal"
EXPECTED = {202, 400, 401, 413}

# The app, client and Redis are shared by all examples of one test; each example compares the
# stream's length before and after instead of starting from an empty stream.
fuzz = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

HEADER_NAMES = st.sampled_from(
    [
        "x-savvycal-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "Webhook-Signature",
        "content-type",
        "content-length",
        "x-anything",
    ]
)
HEADER_VALUES = st.one_of(
    st.binary(max_size=80),
    st.sampled_from(
        [b"", b"sha256=", b"v1,", b"v1,AAAA", b"1614265330", b"msg_1", b"\xb2", b"99999999"]
    ),
    st.text(alphabet="v1,= sha256ABCDEF0123456789+/", max_size=60).map(str.encode),
)
BODIES = st.one_of(
    st.binary(max_size=512),
    st.sampled_from([b"", b"{}", b"[]", b"null", b'{"id": "evt_1"}', b"\xff" * 10]),
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
TIMES = st.one_of(
    JSON,
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(["2025-03-01T14:00:00Z", "2025-03-01T14:00:00+14:00", "0001-01-01T00:00:00"]),
)


@fuzz
@given(body=BODIES, headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5))
async def test_arbitrary_unsigned_deliveries_never_fail_and_are_never_queued(
    client: httpx.AsyncClient, redis: aioredis.Redis, body: bytes, headers: dict[str, bytes]
) -> None:
    before = await redis.xlen(EVENT_STREAM)
    response = await client.post(URL, content=body, headers=headers)
    event(f"status {response.status_code}")
    assert response.status_code in EXPECTED
    assert response.status_code != 202
    assert await redis.xlen(EVENT_STREAM) == before


@fuzz
@given(
    data=st.data(),
    field=st.sampled_from(
        [
            "id",
            "created_at",
            "data",
            "type",
            "object",
            "appointment.id",
            "start_at",
            "end_at",
            "meeting",
            "meeting.id",
            "meeting.status",
            "meeting.host_url",
            "previous_attributes",
        ]
    ),
    scheme=st.sampled_from(["native", "webhook-", "svix-"]),
)
async def test_signed_envelopes_with_any_field_value_are_202_or_400(
    client: httpx.AsyncClient,
    redis: aioredis.Redis,
    samples: Samples,
    data: st.DataObject,
    field: str,
    scheme: str,
) -> None:
    envelope = samples.envelope(type="appointment.meeting.replaced")
    value = data.draw(TIMES if field in {"created_at", "start_at", "end_at"} else JSON)
    _set(envelope, field, value)
    body = json.dumps(envelope).encode()  # not orjson: integers beyond 64 bits are fair game
    headers = (
        samples.native_headers(body)
        if scheme == "native"
        else samples.standard_headers(body, prefix=scheme)
    )
    before = await redis.xlen(EVENT_STREAM)
    response = await client.post(URL, content=body, headers=headers)
    event(f"status {response.status_code}")
    assert response.status_code in {202, 400}
    queued = await redis.xlen(EVENT_STREAM) - before
    assert queued == (1 if response.json().get("status") == "queued" else 0)


def _set(envelope: dict[str, Any], field: str, value: Any) -> None:
    appointment = envelope["data"]["object"]
    targets = {
        "id": (envelope, "id"),
        "created_at": (envelope, "created_at"),
        "data": (envelope, "data"),
        "type": (envelope["data"], "type"),
        "object": (envelope["data"], "object"),
        "previous_attributes": (envelope["data"], "previous_attributes"),
        "appointment.id": (appointment, "id"),
        "start_at": (appointment, "start_at"),
        "end_at": (appointment, "end_at"),
        "meeting": (appointment, "meeting"),
        "meeting.id": (appointment["meeting"], "id"),
        "meeting.status": (appointment["meeting"], "status"),
        "meeting.host_url": (appointment["meeting"], "host_url"),
    }
    target, key = targets[field]
    target[key] = value
