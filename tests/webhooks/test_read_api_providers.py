"""The read API's provider-qualified routes serve each provider's rows; SavvyCal's original routes
keep serving SavvyCal's, and neither form shadows the other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from meetsync.events import Event, Meeting
from meetsync.store import open_store
from meetsync.webhooks.read_api import ReadOnlyMirror, read_routes
from tests.helpers.savvycal import savvycal_settings

from ..store.test_provider_identity import two_providers

TOKEN = "read-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    mirror_path = two_providers(tmp_path / "mirror.db")
    settings = savvycal_settings(db_path=str(mirror_path), read_token=TOKEN)
    mirror = ReadOnlyMirror(str(mirror_path))
    app = Starlette(routes=read_routes(settings, mirror))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    mirror.close()


@pytest.mark.parametrize(
    ("path", "provider"),
    [
        ("/v1/appointments/appt_1/meeting", "savvycal"),
        ("/v1/meetings/amtg_1", "savvycal"),
        ("/v1/savvycal/appointments/appt_1/meeting", "savvycal"),
        ("/v1/savvycal/meetings/amtg_1", "savvycal"),
        ("/v1/avon/appointments/appt_1/meeting", "avon"),
        ("/v1/avon/meetings/amtg_1", "avon"),
    ],
)
async def test_both_route_forms_serve_their_provider(
    http: httpx.AsyncClient, path: str, provider: str
) -> None:
    assert (await http.get(path)).status_code == 401
    response = await http.get(path, headers=AUTH)
    assert response.status_code == 200
    assert (response.json()["provider"], response.json()["join_url"]) == (
        provider, f"https://{provider}/j")


@pytest.mark.parametrize(
    "path",
    ["/v1/zoom/meetings/amtg_1", "/v1/consularia/appointments/appt_1/meeting",
     "/v1/savvycal/meetings/amtg_0", "/v1/meetings/amtg_0"],
)
async def test_an_unknown_provider_or_id_is_not_found(http: httpx.AsyncClient, path: str) -> None:
    assert (await http.get(path, headers=AUTH)).status_code == 404


async def test_an_appointment_named_meetings_is_not_shadowed(tmp_path: Path) -> None:
    """/v1/appointments/meetings/meeting is SavvyCal's appointment "meetings", not provider
    "appointments"' meeting "meeting"."""
    path = tmp_path / "mirror.db"
    with open_store(path) as store:
        store.apply([Event(id="evt_1", provider="savvycal", type="t", occurred_at=1,
                           appointment_id="meetings",
                           meeting=Meeting(id="amtg_9", status="created"))])
    settings = savvycal_settings(db_path=str(path), read_token=TOKEN)
    mirror = ReadOnlyMirror(str(path))
    transport = httpx.ASGITransport(app=Starlette(routes=read_routes(settings, mirror)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/v1/appointments/meetings/meeting", headers=AUTH)
        assert response.status_code == 200 and response.json()["id"] == "amtg_9"
        response = await client.get("/v1/savvycal/meetings/amtg_9", headers=AUTH)
        assert response.status_code == 200 and response.json()["appointment_id"] == "meetings"
    mirror.close()
