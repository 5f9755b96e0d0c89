"""Signing deliveries and the endpoint-validation handshake as Zoom does.

Written from Zoom's webhook documentation, independently of meetsync's verifier:

- every POST carries ``x-zm-request-timestamp`` (epoch seconds) and
  ``x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{timestamp}:{raw body}")>``, computed
  over the exact bytes sent (Zoom's samples re-serialise the JSON: we never do);
- ``endpoint.url_validation`` carries a ``plainToken``; the endpoint must answer 200
  ``{"plainToken", "encryptedToken": hex HMAC-SHA256(secret token, plainToken)}``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"


def signature(body: bytes, secret_token: str, timestamp: int) -> str:
    message = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()


def zoom_headers(body: bytes, secret_token: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers of one POST of ``body``, signed at ``timestamp`` (default: the real now)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: signature(body, secret_token, stamp),
        "content-type": "application/json; charset=utf-8",
    }


def expected_validation_reply(secret_token: str, plain_token: str) -> dict[str, str]:
    """What the endpoint must answer to ``endpoint.url_validation``."""
    digest = hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": digest}
