"""What ``meetsync endpoints`` needs of Zoom: where to register the URL, and a signed,
marked test delivery.

The test delivery is a ``meeting.created`` (signed ``v0`` with the account's first secret
token) for the meeting ``SELFTEST_APPOINTMENT_ID``, ``0``: no real Zoom meeting has that id,
so downstream readers recognise it and ignore it. It is dated in the year 2000, so no sweep
or credential refresh asks Zoom about it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import orjson

from meetsync.providers import SelfTestDelivery
from meetsync.settings import Account

SELFTEST_APPOINTMENT_ID = "0"


def setup_steps(account: Account, url: str) -> list[str]:
    token = ("ZOOM_WEBHOOK_SECRET_TOKEN" if account.name == "default"
             else f"webhook_secret_token in [providers.zoom.accounts.{account.name}]")
    return [
        "In the Zoom App Marketplace: your Server-to-Server OAuth (or webhook-only) app > "
        "Feature > Event Subscriptions > Add.",
        f"Copy the app's Secret Token into {token} and restart `meetsync serve` BEFORE "
        "validating: Zoom checks the URL with a signed endpoint.url_validation request.",
        f"Event notification endpoint URL: {url}, then Validate.",
        "Events: Meeting > Meeting has been created, updated, deleted, started, ended, "
        "recovered, permanently deleted.",
        "Check it: meetsync endpoints test --provider zoom "
        f"--account {account.name} --public-url {url.split('/webhooks/')[0]}",
    ]


def selftest(account: Account, now: datetime) -> SelfTestDelivery | None:
    """A signed, marked delivery for ``account``; None when it has no secret token."""
    tokens = account.secrets("webhook_secret_token")
    if not tokens:
        return None
    event_ts = int(now.timestamp() * 1000)
    body = orjson.dumps({
        "event": "meeting.created",
        "event_ts": event_ts,
        "payload": {
            "account_id": "meetsync-selftest",
            "operator": "meetsync-selftest@invalid",
            "object": {
                "id": int(SELFTEST_APPOINTMENT_ID), "uuid": "meetsync-selftest",
                "host_id": "meetsync-selftest", "topic": "meetsync selftest",
                "type": 2, "start_time": "2000-01-01T00:00:00Z", "duration": 30,
                "timezone": "UTC",
            },
        },
    })
    stamp = str(event_ts // 1000)
    message = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(tokens[0].encode(), message, hashlib.sha256).hexdigest()
    headers = {"x-zm-request-timestamp": stamp, "x-zm-signature": f"v0={digest}",
               "content-type": "application/json; charset=utf-8"}
    return SelfTestDelivery(body, headers, SELFTEST_APPOINTMENT_ID, event_ts * 1000)


__all__ = ["SELFTEST_APPOINTMENT_ID", "selftest", "setup_steps"]
