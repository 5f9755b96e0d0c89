"""Zoom's webhook signature (``v0``) and its endpoint URL validation answer.

A delivery carries ``x-zm-request-timestamp`` (Unix seconds) and
``x-zm-signature: v0=<HEX>``, HEX being the lowercase hex HMAC-SHA256, under the app's secret
token, of ``v0:{timestamp}:{raw body}`` (https://developers.zoom.us/docs/api/webhooks/). We
verify the RAW body as received:
Zoom's own samples re-serialise the parsed JSON, which breaks on any byte-level difference.
The timestamp must be within ``TOLERANCE_SECONDS`` of our clock either way (Zoom's samples skip
this check; we do not: without it a captured delivery replays forever).

Several secret tokens may be configured (rotation, and one per account); any one matching is
enough and ``verify`` says which. Zoom publishes no test vectors: the tests compute their own
with ``hmac`` on literal strings.

Every failure is a ``SignatureError`` whose message is safe to return: never the body, a header
value or a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from meetsync.providers import SignatureError

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
TOLERANCE_SECONDS = 5 * 60
"""Replay window, either way; Zoom documents none, 5 minutes as Standard Webhooks (a guess)."""

_PREFIX = "v0="
_HEX_LENGTH = 64
_MAX_TIMESTAMP_DIGITS = 12


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``name`` (lowercase) from ``headers``, whatever their case (a plain dict or Starlette's)."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, found in headers.items():
        if key.lower() == name:
            return found
    return None


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float) -> int:
    """The index in ``secrets`` of the secret token that signed ``body``.

    ``now`` is the receiver's clock (Unix seconds). ``SignatureError`` when no secret is
    configured, a header is missing or malformed, the timestamp is outside the window, or no
    secret matches.
    """
    if not secrets:
        raise SignatureError("no secret token configured for x-zm-signature")
    signature = header(headers, SIGNATURE_HEADER)
    timestamp = header(headers, TIMESTAMP_HEADER)
    if signature is None or timestamp is None:
        raise SignatureError("missing x-zm-signature or x-zm-request-timestamp")
    stamp = timestamp.strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
        raise SignatureError("malformed x-zm-request-timestamp")
    if abs(now - int(stamp)) > TOLERANCE_SECONDS:
        raise SignatureError("x-zm-request-timestamp outside the tolerance window")
    given = _hex_signature(signature)
    message = b"v0:" + stamp.encode() + b":" + body
    for index, secret in enumerate(secrets):
        # The one-shot ``hmac.digest`` (OpenSSL's HMAC in C), compared in constant time.
        expected = hmac.digest(secret.encode(), message, hashlib.sha256).hex().encode()
        if hmac.compare_digest(expected, given):
            return index
    raise SignatureError("invalid signature")


def _hex_signature(value: str) -> bytes:
    text = value.strip()
    if text[: len(_PREFIX)].lower() != _PREFIX:
        raise SignatureError("malformed x-zm-signature")
    digest = text[len(_PREFIX) :].lower()
    if not (digest.isascii() and len(digest) == _HEX_LENGTH
            and all(c in "0123456789abcdef" for c in digest)):
        raise SignatureError("malformed x-zm-signature")
    return digest.encode()


def encrypted_token(plain_token: str, secret: str) -> str:
    """Zoom's ``encryptedToken``: hex HMAC-SHA256 of ``plain_token`` under the secret token."""
    return hmac.digest(secret.encode(), plain_token.encode(), hashlib.sha256).hex()


def url_validation_reply(plain_token: str, secret: str) -> dict[str, str]:
    """The body answering ``endpoint.url_validation`` (200, within 3 s: Zoom's webhook docs)."""
    return {"plainToken": plain_token, "encryptedToken": encrypted_token(plain_token, secret)}


__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_SECONDS",
    "encrypted_token",
    "url_validation_reply",
    "verify",
]
