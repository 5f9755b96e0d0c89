"""The bearer token that guards every read route (``MEETSYNC_READ_TOKEN``), the operator's
routes too (``MEETSYNC_METRICS_TOKEN``): one rule, here."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from meetsync.settings import Settings


def token_matches(given: str, token: str) -> bool:
    """Whether ``given`` is ``token``, in constant time. No token configured matches nothing."""
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def bearer_matches(request: Request, token: str) -> bool:
    """Whether a request carries ``Authorization: Bearer <token>``."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(given.strip(), token)


def bearer_guard(settings: Settings) -> Callable[[Request], bool]:
    """Whether a request carries ``Authorization: Bearer $MEETSYNC_READ_TOKEN``."""
    token = settings.read_token or ""
    return lambda request: bearer_matches(request, token)


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "missing or invalid bearer token"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})
