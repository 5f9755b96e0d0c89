"""The two ways a SavvyCal delivery can be signed.

- Native: ``x-savvycal-signature: sha256=<HEX>``, HEX being the uppercase hex HMAC-SHA256 of the
  raw body under the account's webhook secret. No timestamp is signed (README: Connecting SavvyCal).
- Standard Webhooks (deliveries relayed through Svix or any Standard Webhooks sender):
  ``webhook-id``/``webhook-timestamp``/``webhook-signature`` (or ``svix-`` prefixed) and a
  ``whsec_`` secret; https://www.standardwebhooks.com/ and the ``svix`` package's ``Webhook``.

Each scheme holds every configured secret (comma-separated for rotation); any one matching is
enough. A scheme with no secret accepts nothing. Every failure is a ``SignatureError`` whose
message is safe to return: it never contains the body, a header value or a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from standardwebhooks.webhooks import EmptyWebhookSecretError
from svix.webhooks import Webhook

from meetsync.providers import SignatureError
from meetsync.settings import SettingsError

# Standard Webhooks' replay window, as the svix/standardwebhooks library sets it (5 minutes either
# way); we check it ourselves so the clock can be injected.
TOLERANCE_SECONDS = 5 * 60

_NATIVE_PREFIX = "sha256="
_MAX_TIMESTAMP_DIGITS = 12


class NativeScheme:
    """SavvyCal's own ``x-savvycal-signature`` HMAC."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._keys = tuple(secret.encode() for secret in secrets)

    def verify(self, body: bytes, header: str) -> None:
        if not self._keys:
            raise SignatureError("no secret configured for x-savvycal-signature")
        value = header.strip()
        if value[: len(_NATIVE_PREFIX)].lower() != _NATIVE_PREFIX:
            raise SignatureError("malformed x-savvycal-signature")
        provided = value[len(_NATIVE_PREFIX) :].upper()
        if not provided.isascii():
            raise SignatureError("malformed x-savvycal-signature")
        given = provided.encode()
        for key in self._keys:
            # The one-shot ``hmac.digest`` (OpenSSL's HMAC in C), not an ``hmac.new`` object.
            expected = hmac.digest(key, body, hashlib.sha256).hex().upper().encode()
            if hmac.compare_digest(expected, given):
                return
        raise SignatureError("invalid signature")


class StandardScheme:
    """Standard Webhooks signatures (``v1,<base64>``), verified with ``svix.webhooks.Webhook``."""

    def __init__(self, secrets: Iterable[str], clock: Callable[[], float]) -> None:
        self._hooks = tuple(_webhook(secret) for secret in secrets)
        self._clock = clock

    def verify(
        self, body: bytes, msg_id: str | None, timestamp: str | None, signature: str | None
    ) -> None:
        if not self._hooks:
            raise SignatureError("no secret configured for Standard Webhooks signatures")
        if not (msg_id and timestamp and signature):
            raise SignatureError("missing Standard Webhooks headers")
        sent_at = self._timestamp(timestamp)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError("body is not UTF-8") from None
        given = _v1_signatures(signature)
        if not given:
            raise SignatureError("malformed webhook-signature")
        for hook in self._hooks:
            try:
                signed = hook.sign(msg_id, sent_at, text)
            except ValueError:  # e.g. a header that cannot be encoded as UTF-8
                raise SignatureError("malformed Standard Webhooks headers") from None
            expected = base64.b64decode(signed.partition(",")[2])
            if any(hmac.compare_digest(expected, candidate) for candidate in given):
                return
        raise SignatureError("invalid signature")

    def _timestamp(self, header: str) -> datetime:
        value = header.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
            raise SignatureError("malformed webhook-timestamp")
        seconds = int(value)
        if abs(self._clock() - seconds) > TOLERANCE_SECONDS:
            raise SignatureError("webhook-timestamp outside the tolerance window")
        return datetime.fromtimestamp(seconds, UTC)


def _webhook(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except (ValueError, TypeError, RuntimeError, EmptyWebhookSecretError):
        # The message names the setting, never the value.
        raise SettingsError("STANDARD_WEBHOOK_SECRET is not a valid whsec_ secret") from None


def _v1_signatures(header: str) -> tuple[bytes, ...]:
    """The decoded ``v1`` entries of a space-separated signature header; malformed ones skipped."""
    found: list[bytes] = []
    for entry in header.split():
        version, sep, encoded = entry.partition(",")
        if version != "v1" or not sep or not encoded.isascii():
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return tuple(found)
