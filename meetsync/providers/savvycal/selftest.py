"""What ``meetsync endpoints`` needs of SavvyCal: where to register the URL, and a signed,
marked test delivery.

The test delivery is an ``appointment.meeting.updated`` for the appointment
``SELFTEST_APPOINTMENT_ID`` (canceled, in the year 2000, its meeting canceled): downstream
readers recognise it by that id and ignore it. Its event id starts ``meetsync-selftest-``.
It is signed the way the account's secrets allow: natively (``x-savvycal-signature``) when a
native secret is set, else as a Standard Webhooks relay would.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import orjson
from svix.webhooks import Webhook

from meetsync.events import to_micros
from meetsync.providers import SelfTestDelivery
from meetsync.settings import Account

SELFTEST_APPOINTMENT_ID = "appt_selftest0000"
SELFTEST_MEETING_ID = "amtg_selftest0000"
_PAST = {"object": "zoned_date_time", "time_zone": "UTC"}


def setup_steps(account: Account, url: str) -> list[str]:
    signing = ("SAVVYCAL_WEBHOOK_SECRET" if account.name == "default"
               else f"webhook_secret in [providers.savvycal.accounts.{account.name}]")
    return [
        "In SavvyCal: Settings > Developers > Webhooks > Add endpoint.",
        f"Endpoint URL: {url}",
        "Events: every appointment.* event (at least the appointment.meeting.* ones).",
        f"Copy the endpoint's signing secret into {signing} (comma-separate old and new "
        "while rotating); a Svix / Standard Webhooks relay's whsec_ secret goes in "
        "STANDARD_WEBHOOK_SECRET instead.",
        "Check it: meetsync endpoints test --provider savvycal "
        f"--account {account.name} --public-url {url.split('/webhooks/')[0]}",
    ]


def selftest(account: Account, now: datetime) -> SelfTestDelivery | None:
    """A signed, marked delivery for ``account``; None when it has no webhook secret."""
    native = account.secrets("webhook_secret")
    standard = account.secrets("standard_webhook_secret")
    if not native and not standard:
        return None
    event_id = f"meetsync-selftest-{secrets.token_hex(8)}"
    start = {**_PAST, "utc": "2000-01-01T00:00:00Z", "local": "2000-01-01T00:00:00",
             "unix_ts": 946684800}
    end = {**_PAST, "utc": "2000-01-01T00:30:00Z", "local": "2000-01-01T00:30:00",
           "unix_ts": 946686600}
    body = orjson.dumps({
        "id": event_id,
        "account_id": "acct_selftest0000",
        "version": "1.0",
        "created_at": now.astimezone(UTC).isoformat(),
        "data": {
            "type": "appointment.meeting.updated",
            "object": {
                "id": SELFTEST_APPOINTMENT_ID, "object": "appointment", "status": "canceled",
                "start_at": start, "end_at": end, "created_at": "2000-01-01T00:00:00Z",
                "provider": {"id": "prov_selftest0000"},
                "meeting": {
                    "id": SELFTEST_MEETING_ID, "object": "appointment_meeting",
                    "status": "canceled", "conferencing_provider": None,
                    "external_meeting_id": None, "join_url": None, "host_url": None,
                    "password": None, "error_message": None,
                },
            },
        },
    })
    if native:
        digest = hmac.new(native[0].encode(), body, hashlib.sha256).hexdigest().upper()
        headers = {"x-savvycal-signature": f"sha256={digest}",
                   "x-savvycal-webhook-id": "wh_meetsync-selftest"}
    else:
        headers = {"webhook-id": event_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(standard[0]).sign(event_id, now, body.decode())}
    headers["content-type"] = "application/json"
    return SelfTestDelivery(body, headers, SELFTEST_APPOINTMENT_ID, to_micros(now))


__all__ = ["SELFTEST_APPOINTMENT_ID", "selftest", "setup_steps"]
