"""The provider-neutral event: what one delivery (or one API fetch) says an appointment is.

Every provider module turns its own envelope into an ``Event``; the queue carries it as JSON and
the store applies it. An event is a snapshot of the appointment and its current meeting at
``occurred_at`` (microseconds since the epoch, UTC): the newest snapshot wins.

``occurred_at`` is the provider's clock, trusted only so far: ``received`` orders an event dated
beyond its receipt plus a skew tolerance at the moment meetsync received it, so one bad clock
cannot date a snapshot into the future and pin the mirror there. An event its provider sent
without a date (``UNDATED``) is ordered at its receipt the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MEETING_STATUSES = frozenset(
    {"pending", "created", "failed", "skipped", "update_pending", "cancel_pending", "canceled"}
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LEGACY_PROVIDER = "savvycal"
"""Whose rows every mirror held before ids were keyed by provider (the store's migrations fill
it in), and whose unqualified read routes (``/v1/appointments/...``) stay. A fact of the data's
history, kept here so that the store needs no provider package."""

UNDATED = -(2**62)
"""``occurred_at`` of an event its provider sent without a date: ``received`` orders it at its
receipt (``claimed_at`` stays None: it claimed no date). Below every real date, so one that
skipped ``received`` by mistake is older than everything and can pin nothing."""


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
    host_url_expires_at: str | None = None  # ISO-8601 UTC; None: the provider gives no end
    password_expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    """One participant of an appointment, as a provider that lists them names it."""

    id: str
    role: str | None = None
    unique_id: str | None = None
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a recurring appointment, as a provider that lists them names it:
    ``start_at``/``end_at`` ISO-8601 UTC (None: not given), ``status`` as the provider gives it."""

    id: str
    start_at: str | None = None
    end_at: str | None = None
    status: str | None = None


MEETING_FIELDS = ("status", "conferencing_provider", "external_meeting_id", "join_url",
                  "host_url", "password", "error_message")
"""A meeting's fields besides its id, in the provider's order (the mirror's columns too).
The credentials' expiry times are the providing package's word on when each dies."""


@dataclass(frozen=True, slots=True)
class Event:
    """One snapshot of an appointment, ordered by ``(occurred_at, id)``.

    ``account`` names the configured account the event came through (``default`` for the
    single-account settings). ``meeting`` is the appointment's meeting at that moment;
    ``participants``, when a provider lists them, replace the appointment's (None says
    nothing); so do a recurring appointment's ``occurrences``. ``no_meeting`` says the snapshot
    states it has none (``meeting: null``, or gone at the provider), which the mirror applies,
    while ``meeting=None`` alone means the snapshot does not say. ``start_at``/``end_at``
    None likewise mean "not said" (a deletion that carries no times): the mirror keeps the
    times of the newest snapshot that gave any. ``claimed_at`` keeps the provider's own date of
    an event ``received`` re-dated (``occurred_at``) to its receipt.
    """

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
    no_meeting: bool = False
    received_at: int | None = None
    claimed_at: int | None = None
    account: str = "default"
    participants: tuple[Participant, ...] | None = None  # None: the snapshot does not say
    occurrences: tuple[Occurrence, ...] | None = None  # None: the snapshot does not say

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        data: dict[str, Any] = orjson.loads(raw)
        meeting = data.pop("meeting", None)
        participants = data.pop("participants", None)
        occurrences = data.pop("occurrences", None)
        return cls(
            **data, meeting=Meeting(**meeting) if meeting else None,
            participants=None if participants is None
            else tuple(Participant(**p) for p in participants),
            occurrences=None if occurrences is None
            else tuple(Occurrence(**o) for o in occurrences),
        )


def received(event: Event, at: int, tolerance: int) -> Event:
    """``event`` as received at ``at`` (µs): dated more than ``tolerance`` (µs) after that, its
    provider's clock is not trusted and it is ordered at ``at`` instead (``claimed_at`` keeps
    the date it claimed). Within the tolerance the provider's date stands, so ordinary clock
    skew never reorders events. An ``UNDATED`` event is ordered at ``at`` and claims nothing."""
    if event.occurred_at == UNDATED:
        return replace(event, occurred_at=at, received_at=at)
    if event.occurred_at > at + tolerance:
        return replace(event, occurred_at=at, received_at=at, claimed_at=event.occurred_at)
    return _received_at(event, at)


_SLOTS = Event.__slots__


def _received_at(event: Event, at: int) -> Event:
    """``replace(event, received_at=at)`` at half its cost: every event the receiver queues
    goes through here (bench/notes.md: ingest). ``Event`` has no ``__post_init__``, so a copy
    of its slots is what its ``__init__`` would build."""
    stamped: Event = object.__new__(Event)
    for name in _SLOTS:
        object.__setattr__(stamped, name, getattr(event, name))
    object.__setattr__(stamped, "received_at", at)
    return stamped


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch for an aware datetime."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def iso_utc(moment: datetime) -> str:
    """The mirror's one timestamp format: ``2025-03-01T15:00:00Z`` (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gone(
    event_id: str, provider: str, appointment_id: str, occurred_at: int, *, type: str,
    account: str = "default", start_at: str | None = None, end_at: str | None = None,
) -> Event:
    """The snapshot of an appointment its provider no longer knows: deleted, no meeting. Without
    ``start_at``/``end_at`` it says nothing of times: the mirror keeps those it knew, so its
    credentials still die."""
    return Event(
        id=event_id, provider=provider, type=type, occurred_at=occurred_at,
        appointment_id=appointment_id, appointment_status="deleted", start_at=start_at,
        end_at=end_at, no_meeting=True, account=account,
    )
