"""SavvyCal's JSON shapes (appointment, meeting, zoned time, provider), built from a seeded
random source."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

_ALPHABET = string.ascii_letters + string.digits

TIME_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
)

APPOINTMENT_STATUSES = frozenset({"scheduled", "canceled"})
MEETING_STATUSES = frozenset(
    {"pending", "created", "failed", "skipped", "update_pending", "cancel_pending", "canceled"}
)


def token(rng: random.Random, length: int = 12) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def iso_micros(moment: datetime) -> str:
    """``2025-03-01T15:00:00.123456Z``: the format of envelope and appointment timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def zoned(moment: datetime, time_zone: str, *, with_offset: bool = True) -> dict[str, Any]:
    """A ZonedDateTime; ``local`` may come without its offset, as the contract warns."""
    local = moment.astimezone(ZoneInfo(time_zone)).replace(microsecond=0)
    return {
        "object": "zoned_date_time",
        "utc": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "local": local.isoformat() if with_offset else local.replace(tzinfo=None).isoformat(),
        "unix_ts": int(moment.timestamp()),
        "time_zone": time_zone,
    }


def meeting(meeting_id: str, conferencing_provider: str | None, status: str) -> dict[str, Any]:
    """An AppointmentMeeting with no details yet (they appear once ``created``)."""
    return {
        "id": meeting_id,
        "object": "appointment_meeting",
        "status": status,
        "conferencing_provider": conferencing_provider,
        "external_meeting_id": None,
        "join_url": None,
        "host_url": None,
        "password": None,
        "error_message": None,
    }


def host_url(booking_domain: str, appointment_id: str, rng: random.Random) -> str:
    """The proxy host URL of seed 001: a credential carrying a random token."""
    return f"https://{booking_domain}/p/appointments/{appointment_id}/host?token={token(rng, 43)}"


def provider(provider_id: str, name: str) -> dict[str, Any]:
    return {
        "id": provider_id,
        "object": "provider",
        "display_name": name,
        "email": f"{name.lower().replace(' ', '.')}@example.com",
    }
