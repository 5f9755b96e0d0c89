"""Signing deliveries the way SavvyCal (or a Standard Webhooks relay) does.

Written independently of meetsync's verifier on purpose: the two must agree only through the
documented formats (https://www.standardwebhooks.com/ for the standard ones).
Native: ``x-savvycal-signature: sha256=<UPPERCASE hex HMAC-SHA256(secret, body)>``, no timestamp.
Standard: ``webhook-id``/``webhook-timestamp``/``webhook-signature`` (or the
``svix-`` prefixed names) from ``svix.webhooks.Webhook(whsec_...).sign``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from svix.webhooks import Webhook

from meetsync.simulator.delivery import Sendable

Scheme = Literal["native", "standard", "svix"]


def native_headers(body: bytes, secret: str, webhook_id: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().upper()
    return {"x-savvycal-signature": f"sha256={digest}", "x-savvycal-webhook-id": webhook_id}


def standard_headers(
    body: bytes,
    secret: str,
    message_id: str,
    *,
    at: datetime | None = None,
    prefix: str = "webhook",
) -> dict[str, str]:
    moment = at or datetime.now(UTC)
    signature: str = Webhook(secret).sign(message_id, moment, body.decode())
    return {
        f"{prefix}-id": message_id,
        f"{prefix}-timestamp": str(int(moment.timestamp())),
        f"{prefix}-signature": signature,
    }


def sign(
    scheme: Scheme, body: bytes, secret: str, *, event_id: str, webhook_id: str
) -> dict[str, str]:
    """The signature headers for one POST (standard ones signed at the current real time)."""
    if scheme == "native":
        return native_headers(body, secret, webhook_id)
    message_id = f"msg_{event_id.removeprefix('evt_')}"
    prefix = "svix" if scheme == "svix" else "webhook"
    return standard_headers(body, secret, message_id, prefix=prefix)


def signer(
    scheme: Scheme, secret: str, *, webhook_id: str = "wh_simulated"
) -> Callable[[Sendable], dict[str, str]]:
    """A ``signer`` for ``meetsync.simulator.deliver``: each POST signed by ``scheme`` with
    ``secret`` (standard ones at the real time of the attempt, as a relay signs a retry anew);
    ``webhook_id`` names the SavvyCal webhook endpoint the deliveries come from."""

    def headers(delivery: Sendable) -> dict[str, str]:
        return sign(scheme, delivery.body, secret, event_id=delivery.event_id,
                    webhook_id=webhook_id)

    return headers
