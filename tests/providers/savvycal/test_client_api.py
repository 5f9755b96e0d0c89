"""The client reads appointments and pages through the provider API as the contract shapes them."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from meetsync.providers.http import ClientOptions
from meetsync.providers.savvycal.client import PermanentApiError, RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.simulator import SavvyCalSim
from tests.helpers.savvycal import iter_appointments

MakeClient = Callable[..., SavvyCalClient]

UPCOMING = [{"field": "period", "op": "==", "value": "upcoming"}]


async def test_get_appointment_returns_the_truth(sim: SavvyCalSim, make_client: MakeClient) -> None:
    client = make_client()
    appointment_id = next(iter(sim.appointments))
    got = await client.get_appointment(appointment_id)
    assert got is not None
    assert got["id"] == appointment_id
    assert got["meeting"] == sim.appointments[appointment_id]["meeting"]
    assert got["updated_at"] == sim.appointments[appointment_id]["updated_at"]


async def test_unknown_appointment_is_none(make_client: MakeClient) -> None:
    assert await make_client().get_appointment("appt_000000000000") is None


async def test_pages_cover_every_appointment_once(
    sim: SavvyCalSim, make_client: MakeClient
) -> None:
    client = make_client()
    first = await client.list_appointments(page=1, page_size=25)
    assert (first.current_page, first.page_size) == (1, 25)
    assert first.total_count == len(sim.appointments)
    assert first.total_pages == -(-len(sim.appointments) // 25)
    seen = [row["id"] for row in first.data]
    for page in range(2, first.total_pages + 1):
        seen += [
            row["id"] for row in (await client.list_appointments(page=page, page_size=25)).data
        ]
    assert sorted(seen) == sorted(sim.appointments)
    starts = [sim.appointments[i]["start_at"]["unix_ts"] for i in seen]
    assert starts == sorted(starts)


async def test_iter_appointments_with_the_upcoming_filter(
    sim: SavvyCalSim, make_client: MakeClient
) -> None:
    client = make_client()
    rows = [row async for row in iter_appointments(client, filters=UPCOMING, page_size=7)]
    now = sim.now.timestamp()
    expected = {a["id"] for a in sim.appointments.values() if a["end_at"]["unix_ts"] > now}
    assert {row["id"] for row in rows} == expected
    assert len(rows) == len(expected)
    assert 0 < len(expected) < len(sim.appointments)


async def test_bearer_token_is_sent_and_a_wrong_one_is_permanent(
    make_client: MakeClient,
) -> None:
    client = make_client(token="not-the-token")
    with pytest.raises(PermanentApiError) as caught:
        await client.list_appointments(page=1, page_size=10)
    assert caught.value.status == 401
    assert "not-the-token" not in str(caught.value)
    assert client.retries == 0


async def test_account_header_is_sent_when_configured() -> None:
    sim = SavvyCalSim(3, account_id="acct_platform0001")
    sim.play(5)
    transport = httpx_transport(sim)
    async with SavvyCalClient(
        "http://sim/v1",
        sim.token,
        account_id="acct_platform0001",
        budget=RequestBudget(),
        options=ClientOptions(transport=transport),
    ) as client:
        page = await client.list_appointments(page=1, page_size=100)
        assert page.total_count == 5
    async with SavvyCalClient(
        "http://sim/v1", sim.token, budget=RequestBudget(),
        options=ClientOptions(transport=transport),
    ) as client:
        with pytest.raises(PermanentApiError) as caught:
            await client.list_appointments(page=1, page_size=100)
        assert caught.value.status == 403


async def test_page_size_over_the_maximum_is_refused(make_client: MakeClient) -> None:
    with pytest.raises(PermanentApiError) as caught:
        await make_client().list_appointments(page=1, page_size=101)
    assert caught.value.status == 400


def httpx_transport(sim: SavvyCalSim) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=sim.asgi_app())
