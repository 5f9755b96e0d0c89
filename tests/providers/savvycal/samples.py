"""SavvyCal deliveries as its documentation shapes them, and their signatures: the samples the
receiver's tests and SavvyCal's envelope and signing tests share (fixture ``samples``)."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from svix.webhooks import Webhook

NATIVE_SECRET = "savvycal-native-secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOST_URL = "https://book.acme.com/p/appointments/appt_a1b2c3d4e5f6/host?token=SECRET-TOKEN"


class Samples:
    """SavvyCal deliveries as the contract describes them, and their signatures."""

    native_secret = NATIVE_SECRET
    standard_secret = STANDARD_SECRET
    host_url = HOST_URL

    def meeting(self, **overrides: Any) -> dict[str, Any]:
        return {
            "conferencing_provider": "zoom_admin",
            "error_message": None,
            "external_meeting_id": "82912345678",
            "host_url": HOST_URL,
            "id": "amtg_a1b2c3d4e5f6",
            "join_url": "https://zoom.us/j/82912345678",
            "object": "appointment_meeting",
            "password": "abc123",
            "status": "created",
            **overrides,
        }

    def appointment(self, **overrides: Any) -> dict[str, Any]:
        return {
            "id": "appt_a1b2c3d4e5f6",
            "object": "appointment",
            "status": "scheduled",
            "start_at": {
                "object": "zoned_date_time",
                "utc": "2025-03-01T15:00:00Z",
                "local": "2025-03-01T10:00:00-05:00",
                "unix_ts": 1740841200,
                "time_zone": "America/New_York",
            },
            "end_at": {
                "object": "zoned_date_time",
                "utc": "2025-03-01T15:30:00Z",
                "local": "2025-03-01T10:30:00",
                "unix_ts": 1740843000,
                "time_zone": "America/New_York",
            },
            "created_at": "2025-02-20T12:00:00Z",
            "provider": {"id": "prov_a1b2c3d4e5f6"},
            "meeting": self.meeting(),
            "some_future_field": {"ignored": True},
            **overrides,
        }

    def envelope(
        self,
        type: str = "appointment.meeting.updated",
        *,
        event_id: str = "evt_0001",
        obj: Any = None,
        created_at: Any = "2025-03-01T14:00:00Z",
        **data_extra: Any,
    ) -> dict[str, Any]:
        return {
            "id": event_id,
            "account_id": "acct_a1b2c3d4e5f6",
            "version": "1.0",
            "created_at": created_at,
            "data": {
                "type": type,
                "object": self.appointment() if obj is None else obj,
                **data_extra,
            },
        }

    def body(self, **kwargs: Any) -> bytes:
        return orjson.dumps(self.envelope(**kwargs))

    def native_headers(self, payload: bytes, secret: str = NATIVE_SECRET) -> dict[str, str]:
        digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest().upper()
        return {"x-savvycal-signature": f"sha256={digest}", "x-savvycal-webhook-id": "wh_0001"}

    def standard_headers(
        self,
        payload: bytes,
        secret: str = STANDARD_SECRET,
        *,
        prefix: str = "webhook-",
        msg_id: str = "msg_0001",
    ) -> dict[str, str]:
        sent_at = int(time.time())
        moment = datetime.fromtimestamp(sent_at, UTC)
        return {
            f"{prefix}id": msg_id,
            f"{prefix}timestamp": str(sent_at),
            f"{prefix}signature": Webhook(secret).sign(msg_id, moment, payload.decode()),
        }
