"""Arbitrary JSON from the Consularia API never raises anything but the seam's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.providers import EnvelopeError, Window
from meetsync.providers.consularia import ConsulariaClient
from meetsync.providers.consularia.mapping import appointment_event
from meetsync.providers.http import ClientOptions, PermanentApiError, RequestBudget

ID = "497f6eca-6276-4993-bfeb-53cbbbba6f08"

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
datetimes = st.sampled_from(["2025-10-30 15:26:22.539536+00:00", "2019-08-24T14:15:22Z",
                             "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                             "2025-02-30T00:00:00Z", "", "now"]) | st.text(max_size=30)
participant = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=8) | json_values, "unique_id": json_values,
    "display_name": json_values, "role": st.sampled_from(["moderator", "participant"]) | scalars,
})
appointments = st.fixed_dictionaries({}, optional={
    "id": st.sampled_from([ID, ID.upper(), "x", ""]) | json_values,
    "start_date_time": datetimes | json_values,
    "duration_minutes": st.integers(-10, 10**7) | json_values,
    "status": st.sampled_from(["scheduled", "Cancelled", ""]) | json_values,
    "participants": st.lists(participant | json_values, max_size=3) | json_values,
    "updated_at": datetimes | json_values,
    "config": json_values,
})
bodies = appointments | json_values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=bodies, detail=st.booleans())
def test_mapping_raises_only_envelope_error(obj: Any, detail: bool) -> None:
    try:
        appointment_event(obj, event_id="e", type="t", occurred_at=1, account="a", detail=detail)
    except EnvelopeError:
        pass


def _client(body: bytes) -> ConsulariaClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    return ConsulariaClient(api_token="t", api_url="http://consularia.test/v1",
                            budget=RequestBudget(10**6),
                            options=ClientOptions(transport=httpx.MockTransport(answer)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies | st.builds(lambda results, count: {"count": count, "results": results},
                               st.lists(appointments | json_values, max_size=4) | json_values,
                               json_values | st.integers(0, 5))
       | st.binary(max_size=20))
async def test_client_raises_only_the_seams_errors(body: Any) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    async with _client(raw) as api:
        try:
            await api.fetch(ID, event_id="e", type="t", priority="refetch", clock=_now)
        except PermanentApiError:
            pass
        try:
            async for page in api.sweep(Window(ending_after="2025-01-01T00:00:00Z"),
                                        event_id=lambda a: a, clock=_now):
                assert all(e.participants is None for e in page.events)
        except PermanentApiError:
            pass


def _now() -> datetime:
    return datetime(2025, 1, 2, tzinfo=UTC)
