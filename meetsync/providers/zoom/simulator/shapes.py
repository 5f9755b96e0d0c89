"""Zoom's JSON shapes (seed 004, the Meetings API reference, rivet-javascript's webhook types),
built from a seeded random source."""

from __future__ import annotations

import base64
import random
import string
from datetime import UTC, datetime
from typing import Any

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
TOPICS = (
    "Weekly sync",
    "Design review",
    "1:1",
    "Customer onboarding",
    "Sprint planning",
    "Incident retro",
    "Interview",
    "Board prep",
)

SCHEDULED = 2
RECURRING_FIXED = 8

# Fields of a Get-meeting response that list items also carry (List meetings: no start_url,
# no password).
LIST_FIELDS = (
    "uuid",
    "id",
    "host_id",
    "topic",
    "type",
    "start_time",
    "duration",
    "timezone",
    "created_at",
    "join_url",
)


def token(rng: random.Random, length: int = 22) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def meeting_uuid(rng: random.Random) -> str:
    """A meeting-instance UUID: base64 of 16 bytes, so it may hold ``/`` and ``+`` (and a ``/``
    at the start or a ``//`` inside, which Zoom wants double-encoded in paths)."""
    return base64.b64encode(rng.randbytes(16)).decode()


def iso_seconds(moment: datetime) -> str:
    """``2026-12-01T15:00:00Z``: Zoom's date-time format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def password(rng: random.Random) -> str:
    """A passcode: up to 10 characters (Zoom's limit); letters and digits here."""
    return token(rng, rng.choice((6, 8, 10)))


def join_url(meeting_id: int, rng: random.Random) -> str:
    """``https://zoom.us/j/{id}?pwd=...``: pwd is Zoom's encrypted passcode, not the passcode."""
    return f"https://zoom.us/j/{meeting_id}?pwd={token(rng, 32)}.1"


def settings(rng: random.Random) -> dict[str, Any]:
    """A small, stable subset of the meeting settings object."""
    return {
        "host_video": rng.random() < 0.5,
        "participant_video": rng.random() < 0.5,
        "join_before_host": False,
        "mute_upon_entry": rng.random() < 0.3,
        "waiting_room": rng.random() < 0.6,
        "approval_type": 2,
        "audio": "both",
        "auto_recording": "none",
    }
