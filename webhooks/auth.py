"""The bearer token that guards every read route (``MEETSYNC_READ_TOKEN``)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from meetsync.settings import Settings


def bearer_guard(settings: Settings) -> Callable[[Request], bool]:
    """Whether a request carries ``Authorization: Bearer $MEETSYNC_READ_TOKEN``."""
    token = (settings.read_token or "").encode()

    def authorized(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # No token configured answers nothing: compare_digest never matches b"".
        return (
            bool(token)
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), token)
        )

    return authorized


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "missing or invalid bearer token"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})
