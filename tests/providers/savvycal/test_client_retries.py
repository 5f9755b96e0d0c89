"""The client retries network errors, timeouts, 5xx and 429 (after retry-after), then gives up."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from meetsync.providers.http import ClientOptions
from meetsync.providers.savvycal.client import (
    PermanentApiError,
    RequestBudget,
    RetryableApiError,
    SavvyCalClient,
)
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.simulator import Faults, ManualClock, serve_in_background

MakeClient = Callable[..., SavvyCalClient]


async def test_5xx_then_success_backs_off_with_jitter(
    sim: SavvyCalSim, make_client: MakeClient, clock: ManualClock
) -> None:
    sim.faults = Faults(error_rate=1.0)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 2:
            sim.faults = Faults()  # the provider recovers during the second backoff

    client = make_client(sleep=sleep, backoff_base=0.5)
    page = await client.list_appointments(page=1, page_size=10)
    assert page.total_count == len(sim.appointments)
    assert len(delays) == 2
    assert 0 <= delays[0] <= 0.5 and 0 <= delays[1] <= 1.0
    assert (client.calls, client.retries) == (1, 2)
    assert client.budget.spent == 3 == sim.requests_served


async def test_5xx_exhausted_is_retryable(sim: SavvyCalSim, make_client: MakeClient) -> None:
    sim.faults = Faults(error_rate=1.0)
    client = make_client(max_attempts=3)
    with pytest.raises(RetryableApiError) as caught:
        await client.get_appointment(next(iter(sim.appointments)))
    assert caught.value.status == 500
    assert client.retries == 2
    assert sim.requests_served == 3


async def test_429_retry_after_is_honoured_exactly(
    sim: SavvyCalSim, make_client: MakeClient
) -> None:
    sim.faults = Faults(rate_limit_rate=1.0, retry_after=7)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        sim.faults = Faults()

    client = make_client(sleep=sleep)
    assert await client.get_appointment(next(iter(sim.appointments))) is not None
    assert delays == [7.0]
    assert client.rate_limited == 1


async def test_the_rate_limit_window_is_waited_out(
    sim: SavvyCalSim, make_client: MakeClient, clock: ManualClock
) -> None:
    client = make_client(app=sim.asgi_app(rate_limit_per_minute=2, clock=clock))
    for _ in range(3):
        await client.list_appointments(page=1, page_size=5)
    assert client.rate_limited == 1
    assert clock.slept == [60.0]
    assert sim.requests_served == 4


async def test_429_exhausted_is_retryable_with_retry_after(
    sim: SavvyCalSim, make_client: MakeClient
) -> None:
    sim.faults = Faults(rate_limit_rate=1.0, retry_after=3)
    client = make_client(max_attempts=2)
    with pytest.raises(RetryableApiError) as caught:
        await client.list_appointments(page=1, page_size=5)
    assert (caught.value.status, caught.value.retry_after) == (429, 3.0)
    assert client.rate_limited == 2


async def test_slow_provider_times_out_then_is_retryable() -> None:
    sim = SavvyCalSim(5)
    sim.play(3)
    sim.faults = Faults(latency_ms=300)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    with serve_in_background(sim.asgi_app()) as root:
        async with SavvyCalClient(
            f"{root}/v1",
            sim.token,
            budget=RequestBudget(),
            options=ClientOptions(timeout=httpx.Timeout(0.05), max_attempts=2, sleep=sleep),
        ) as client:
            with pytest.raises(RetryableApiError, match="timed out") as caught:
                await client.list_appointments(page=1, page_size=5)
    assert caught.value.status is None
    assert len(delays) == 1
    assert sim.token not in str(caught.value)


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with SavvyCalClient(
        f"http://127.0.0.1:{port}/v1",
        "secret-token-value",
        budget=RequestBudget(),
        options=ClientOptions(max_attempts=3, sleep=ManualClock().auto_sleep),
    ) as client:
        with pytest.raises(RetryableApiError, match="network error") as caught:
            await client.get_appointment("appt_000000000000")
    assert "secret-token-value" not in str(caught.value)
    assert f"reaching http://127.0.0.1:{port}/v1" in str(caught.value)  # where to look
    assert client.retries == 2


async def test_malformed_json_is_permanent() -> None:
    async def garbage(_: object) -> Response:
        return Response(b"<html>oops</html>", 200, media_type="text/html")

    app = Starlette(routes=[Route("/v1/appointments/{appointment_id}", garbage)])
    async with SavvyCalClient(
        "http://sim/v1", "t", budget=RequestBudget(),
        options=ClientOptions(transport=httpx.ASGITransport(app=app)),
    ) as client:
        with pytest.raises(PermanentApiError, match="not JSON"):
            await client.get_appointment("appt_000000000000")
        assert client.retries == 0
