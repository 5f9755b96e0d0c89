"""The provider-neutral event: what one delivery (or one API fetch) says an appointment is.

Every provider module turns its own envelope into an ``Event``; the queue carries it as JSON and
the store applies it. An event is a snapshot of the appointment and its current meeting at
``occurred_at`` (microseconds since the epoch, UTC): the newest snapshot wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MEETING_STATUSES = frozenset(
    {"pending", "created", "failed", "skipped", "update_pending", "cancel_pending", "canceled"}
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Meeting:
    """An AppointmentMeeting, named as the provider names its fields."""

    id: str
    status: str
    conferencing_provider: str | None = None
    external_meeting_id: str | None = None
    join_url: str | None = None
    host_url: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    error_message: str | None = None


MEETING_FIELDS = ("status", "conferencing_provider", "external_meeting_id", "join_url",
                  "host_url", "password", "error_message")
"""A meeting's fields besides its id, in the provider's order (the mirror's columns too)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One snapshot of an appointment, ordered by ``(occurred_at, id)``."""

    id: str
    provider: str
    type: str
    occurred_at: int
    appointment_id: str
    appointment_status: str | None = None
    start_at: str | None = None
    end_at: str | None = None
    meeting: Meeting | None = None
    previous_meeting_id: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        data: dict[str, Any] = orjson.loads(raw)
        meeting = data.pop("meeting", None)
        return cls(**data, meeting=Meeting(**meeting) if meeting else None)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch for an aware datetime."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def iso_utc(moment: datetime) -> str:
    """The mirror's one timestamp format: ``2025-03-01T15:00:00Z`` (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
