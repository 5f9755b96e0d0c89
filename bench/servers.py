"""The baselines' servers: bare Starlette routes under the same uvicorn settings as ours.

    python -m bench.servers bare-ingest --port 8001   # verify the native signature, answer 204
    python -m bench.servers bare-read --port 8002     # answer a constant meeting as JSON
"""

from __future__ import annotations

import argparse
import hashlib
import hmac

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.workload import NATIVE_SECRET, SIGNATURE_HEADER
from meetsync.cli import uvicorn_kwargs

_KEY = NATIVE_SECRET.encode()

# The shape ``GET /v1/appointments/{id}/meeting`` answers (store.mirror._meeting_view).
MEETING = {
    "id": "amtg_a1b2c3d4e5f6",
    "object": "appointment_meeting",
    "status": "created",
    "conferencing_provider": "zoom_admin",
    "external_meeting_id": "82912345678",
    "join_url": "https://zoom.us/j/82912345678",
    "host_url": "https://book.example.com/p/appointments/appt_a1b2c3d4e5f6/host?token=x",
    "password": "abc123",
    "error_message": None,
    "appointment_id": "appt_a1b2c3d4e5f6",
    "replaced_by": None,
    "synced_at": "2025-03-01T15:00:00.000Z",
    "source_version_us": 1740841200000000,
}


async def verify_only(request: Request) -> Response:
    body = await request.body()
    given = request.headers.get(SIGNATURE_HEADER, "").removeprefix("sha256=").encode()
    expected = hmac.new(_KEY, body, hashlib.sha256).hexdigest().upper().encode()
    return Response(status_code=204 if hmac.compare_digest(expected, given) else 401)


async def constant_meeting(request: Request) -> Response:
    return JSONResponse(MEETING)


APPS = {
    "bare-ingest": Starlette(routes=[Route("/webhooks/{provider}", verify_only, methods=["POST"])]),
    "bare-read": Starlette(routes=[Route("/v1/appointments/{appointment_id}/meeting",
                                         constant_meeting)]),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(APPS[args.app], host="127.0.0.1", port=args.port, **uvicorn_kwargs())


if __name__ == "__main__":
    main()
