"""The simulated Avon Health's truth: appointments, their changes, and the webhook deliveries
each change sends.

Appointments follow the documented model (docs.avonhealth.com, "Appointment"):
``start_time``/``end_time`` as epoch milliseconds (``time_format="ms"``, the older docs) or
ISO-8601 (``"iso"``, the newer ones), ``status_history`` entries ``{status, changed_by,
changed_at}``, ``interaction_type`` ``video_call`` (with ``video_call {join_url,
meeting_id}``) or ``in_person`` (with a ``location``), ``last_updated_at`` in epoch ms bumped
by every change.

Statuses: ``scheduled`` → (``confirmed``) → ``in_progress`` → ``completed``, or ``cancelled``
at any point before completion (the docs show only ``scheduled``; the rest are read off the
webhook event names). Reschedules move both times; a video call may get a new Zoom meeting, or
switch to in person and back.

Each change sends one unsigned delivery in one of the documented envelope versions
(``ENVELOPES``), picked per delivery unless ``envelope`` fixes it. Deterministic under its
seed: the same seed and ``start`` give byte-identical deliveries whatever the API serves
meanwhile (the API draws from its own ``api_rng``).
"""

from __future__ import annotations

import copy
import random
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from meetsync.simulator.faults import Faults

TimeFormat = Literal["ms", "iso"]
Envelope = Literal["iso", "ms", "wbhk"]
ENVELOPES: tuple[Envelope, ...] = ("iso", "ms", "wbhk")
"""``iso``: ``{event, created_at: ISO, object}``; ``ms``: ``created_at`` in epoch ms;
``wbhk``: ``{id: "wbhk_...", event, object}`` (docs.avonhealth.com "Webhooks", three versions)."""

_ALPHABET = string.ascii_letters + string.digits
_NAMES = ("Annual Check-in", "Follow-up", "Intake", "Therapy session", "Medication review",
          "Lab results", "Care plan review", "Nutrition consult")
# The started event is named differently across doc versions.
_STARTED = {"iso": "appointment.in_progress", "ms": "appointment.started",
            "wbhk": "appointment.started"}


def token(rng: random.Random, length: int = 20) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso_ms(moment: datetime) -> str:
    """``2024-02-22T20:09:46.206Z``: the docs' ISO form."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Credentials:
    """One Avon organisation's API credentials, as an operator would configure them."""

    client_id: str
    client_secret: str = field(repr=False)
    user_jwt: str = field(repr=False)
    account: str  # the ``account`` header
    user_id: str


@dataclass(frozen=True, slots=True)
class AvonDelivery:
    """One webhook delivery: what ``meetsync.simulator.deliver`` sends (unsigned)."""

    event_id: str
    event: str
    appointment_id: str
    body: bytes


@dataclass(slots=True)
class AccessToken:
    client_id: str
    expires_at: float


class AvonModel:
    """A deterministic Avon Health's truth under ``seed``: its appointments and deliveries (the
    API over it is ``api``, the workload that changes it ``workload``)."""

    def __init__(
        self,
        seed: int = 0,
        *,
        start: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
        time_format: TimeFormat = "ms",
        envelope: Envelope | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.api_rng = random.Random(f"{seed}:api")
        self.begin = start or datetime(2026, 12, 1, 15, tzinfo=UTC)
        self.now = self.begin
        self.clock = clock
        self.time_format: TimeFormat = time_format
        self.envelope = envelope
        self.credentials = Credentials(
            client_id=token(self.rng), client_secret=token(self.rng, 32),
            user_jwt="eyJhbGciOiJIUzI1NiJ9." + token(self.rng, 60) + "." + token(self.rng, 43),
            account="acct_" + token(self.rng), user_id="user_" + token(self.rng),
        )
        self.providers = tuple("user_" + token(self.rng) for _ in range(3))
        self.patients = tuple("user_" + token(self.rng) for _ in range(12))
        self.appointments: dict[str, dict[str, Any]] = {}
        self.history: list[AvonDelivery] = []
        self.tokens: dict[str, AccessToken] = {}
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.faults = Faults()
        self._events = 0

    # -- the API's view ----------------------------------------------------------------------

    def shown(self, appointment_id: str) -> dict[str, Any]:
        """The appointment as the API shows it (a deep copy, times in ``time_format``)."""
        stored = self.appointments[appointment_id]
        shown = {k: copy.deepcopy(v) for k, v in stored.items() if not k.startswith("_")}
        for name in ("start_time", "end_time", "actual_start_time", "actual_end_time"):
            if isinstance(shown.get(name), datetime):
                shown[name] = self._time(shown[name])
        return shown

    def listing(self) -> list[str]:
        """Every appointment id, in the listing's order (start time, then id)."""
        return sorted(self.appointments,
                      key=lambda a: (self.appointments[a]["start_time"], a))

    def status(self, appointment_id: str) -> str:
        return str(self.appointments[appointment_id]["status_history"][-1]["status"])

    def signer(self) -> Callable[[AvonDelivery], dict[str, str]]:
        """Avon signs nothing: each POST carries only its content type."""
        return unsigned_headers

    # -- changes -----------------------------------------------------------------------------

    def create(self, *, video: bool = True, start_time: datetime | None = None) -> AvonDelivery:
        """``appointment.created``: a new appointment, ``scheduled``."""
        rng = self.rng
        self._tick()
        appointment_id = self._new_id()
        start = start_time or self._random_start()
        minutes = rng.choice((15, 30, 45, 60))
        stamp = epoch_ms(self.now)
        host = rng.choice(self.providers)
        appointment: dict[str, Any] = {
            "id": appointment_id,
            "object": "appointment",
            "appointment_type": "aptp_" + token(rng),
            "name": rng.choice(_NAMES),
            "description": "",
            "group": False,
            "internal": False,
            "recurring": {"is_recurring": False},
            "start_time": start,
            "end_time": start + timedelta(minutes=minutes),
            "host": host,
            "attendees": [{
                "id": rng.choice(self.patients), "attendance_status": "going", "no_show": False,
                "payment_status": "not_applicable", "last_updated_at": stamp,
            }],
            "interaction_type": "video_call" if video else "in_person",
            "status_history": [{"status": "scheduled", "changed_by": host, "changed_at": stamp}],
            "visit_note": "note_" + token(rng),
            "change_log": "clog_" + token(rng),
            "created_by": host,
            "created_at": stamp,
            "last_updated_at": stamp,
        }
        self._set_interaction(appointment, video)
        self.appointments[appointment_id] = appointment
        return self._emit("appointment.created", appointment_id)

    def reschedule(self, appointment_id: str, *, by: timedelta | None = None) -> AvonDelivery:
        """``appointment.rescheduled``: both times move."""
        appointment = self.appointments[appointment_id]
        self._tick()
        shift = by if by is not None else timedelta(
            minutes=self.rng.choice((-60, 30, 60, 120, 1440)))
        appointment["start_time"] += shift
        appointment["end_time"] += shift
        self._touch(appointment)
        return self._emit("appointment.rescheduled", appointment_id)

    def new_video_call(self, appointment_id: str) -> AvonDelivery:
        """``appointment.updated``: the video call gets a new Zoom meeting."""
        appointment = self.appointments[appointment_id]
        self._tick()
        self._set_interaction(appointment, True)
        self._touch(appointment)
        return self._emit("appointment.updated", appointment_id)

    def switch(self, appointment_id: str) -> AvonDelivery:
        """``appointment.updated``: video call ↔ in person."""
        appointment = self.appointments[appointment_id]
        self._tick()
        self._set_interaction(appointment, appointment["interaction_type"] != "video_call")
        self._touch(appointment)
        return self._emit("appointment.updated", appointment_id)

    def confirm(self, appointment_id: str) -> AvonDelivery:
        return self._status(appointment_id, "confirmed", "appointment.updated")

    def start(self, appointment_id: str) -> AvonDelivery:
        """``appointment.started`` (``appointment.in_progress`` in one doc version)."""
        delivery = self._status(appointment_id, "in_progress", "appointment.started")
        self.appointments[appointment_id]["actual_start_time"] = self.now
        return delivery

    def complete(self, appointment_id: str) -> AvonDelivery:
        delivery = self._status(appointment_id, "completed", "appointment.completed")
        self.appointments[appointment_id]["actual_end_time"] = self.now
        return delivery

    def cancel(self, appointment_id: str) -> AvonDelivery:
        return self._status(appointment_id, "cancelled", "appointment.cancelled")

    # -- internals ---------------------------------------------------------------------------

    def _status(self, appointment_id: str, status: str, event: str) -> AvonDelivery:
        appointment = self.appointments[appointment_id]
        self._tick()
        appointment["status_history"].append({
            "status": status, "changed_by": appointment["host"],
            "changed_at": epoch_ms(self.now)})
        self._touch(appointment)
        return self._emit(event, appointment_id)

    def _set_interaction(self, appointment: dict[str, Any], video: bool) -> None:
        rng = self.rng
        appointment.pop("video_call", None)
        appointment.pop("location", None)
        if video:
            meeting_id = str(rng.randrange(80_000_000_000, 99_999_999_999))
            appointment["interaction_type"] = "video_call"
            appointment["video_call"] = {
                "join_url": f"https://us06web.zoom.us/j/{meeting_id}?pwd={token(rng, 32)}.1",
                "meeting_id": meeting_id,
            }
        else:
            appointment["interaction_type"] = "in_person"
            appointment["location"] = {"line1": f"{rng.randint(1, 999)} Main St",
                                       "city": "Springfield", "state": "IL", "zip": "62701"}

    def _touch(self, appointment: dict[str, Any]) -> None:
        appointment["last_updated_at"] = epoch_ms(self.now)

    def _emit(self, event: str, appointment_id: str) -> AvonDelivery:
        rng = self.rng
        version: Envelope = self.envelope if self.envelope is not None else rng.choice(ENVELOPES)
        if event == "appointment.started":
            event = _STARTED[version]
        self._events += 1
        # Sent a little after the change it reports.
        sent = self.now + timedelta(milliseconds=rng.randint(1, 80))
        body: dict[str, Any] = {}
        if version == "wbhk":
            body["id"] = "wbhk_" + token(rng)
        body["event"] = event
        if version == "iso":
            body["created_at"] = iso_ms(sent)
        elif version == "ms":
            body["created_at"] = epoch_ms(sent)
        body["object"] = self.shown(appointment_id)
        delivery = AvonDelivery(f"avevt_{self._events:08d}", event, appointment_id,
                                orjson.dumps(body))
        self.history.append(delivery)
        return delivery

    def _time(self, moment: datetime) -> int | str:
        return epoch_ms(moment) if self.time_format == "ms" else iso_ms(moment)

    def _new_id(self) -> str:
        while True:
            candidate = "appt_" + token(self.rng)
            if candidate not in self.appointments:
                return candidate

    def _random_start(self) -> datetime:
        """Mostly upcoming within days, on a quarter hour; some earlier today."""
        rng, now = self.rng, self.now
        if rng.random() < 0.85:
            slot = now + timedelta(minutes=rng.randint(1, 5 * 24 * 4) * 15)
            return slot.replace(minute=slot.minute // 15 * 15, second=0, microsecond=0)
        return now - timedelta(minutes=rng.randint(90, 23 * 60))

    def _tick(self) -> None:
        self.now += timedelta(microseconds=self.rng.randint(3_000, 2_500_000))


def unsigned_headers(delivery: AvonDelivery) -> dict[str, str]:
    """The headers of one POST of ``delivery``: Avon documents no signature."""
    return {"content-type": "application/json"}


__all__ = [
    "ENVELOPES",
    "AccessToken",
    "AvonDelivery",
    "AvonModel",
    "Credentials",
    "Envelope",
    "TimeFormat",
    "epoch_ms",
    "iso_ms",
    "unsigned_headers",
]
