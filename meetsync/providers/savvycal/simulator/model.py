"""The provider's truth: appointments, a simulated clock and one webhook envelope per change.

Every public mutation changes the truth, advances the simulated clock by a few milliseconds to a
few seconds and returns the ``Delivery`` the provider would send for it. The appointment's
``updated_at`` is the envelope's ``created_at``, so an API fetch and a webhook of the same change
carry the same timestamp.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

import meetsync.providers.savvycal.simulator.shapes as shapes
from meetsync.simulator.faults import Faults

_HOSTS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov")
_FAILURES = (
    "Zoom API error: user not found (1001)",
    "Zoom API error: rate limited (429)",
    "Zoom account is not connected",
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook envelope, as the provider would POST it."""

    event_id: str
    type: str
    appointment_id: str
    created_at: datetime
    body: bytes

    def envelope(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


class SavvyCalModel:
    """A deterministic SavvyCal's truth under ``seed``: its appointments and change log (the
    API over it is ``api``, the workload that changes it ``workload``).

    ``start`` is the simulated "now" that appointments are spread around and where the clock
    begins; it defaults to the current time, so pass it for byte-identical runs.
    """

    def __init__(
        self,
        seed: int,
        *,
        start: datetime | None = None,
        token: str = "sim-token",  # noqa: S107 - the simulator's own fake token
        account_id: str | None = None,
        booking_domain: str = "book.example.com",
    ) -> None:
        self.rng = random.Random(seed)
        self.start = (start or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
        self.now = self.start
        self.token = token
        self.account_id = account_id
        self.envelope_account_id = account_id or f"acct_{shapes.token(self.rng)}"
        self.booking_domain = booking_domain
        self.appointments: dict[str, dict[str, Any]] = {}
        self.history: list[Delivery] = []
        self.faults = Faults()
        self.requests_served = 0
        self._ids: set[str] = set()
        self._hosts = [shapes.provider(self._new_id("prov"), name) for name in _HOSTS]

    # -- changes -----------------------------------------------------------------------------

    def book(
        self,
        *,
        start_at: datetime | None = None,
        minutes: int | None = None,
        conferencing_provider: str | None = "zoom_admin",
        skipped: bool = False,
    ) -> Delivery:
        """``appointment.created``: a new appointment with a pending (or skipped, or no) meeting."""
        rng = self.rng
        appointment_id = self._new_id("appt")
        begin = start_at or self._random_start()
        minutes = minutes or rng.choice((15, 30, 30, 45, 60))
        time_zone = rng.choice(shapes.TIME_ZONES)
        meeting = None
        if conferencing_provider is not None:
            status = "skipped" if skipped else "pending"
            meeting = shapes.meeting(self._new_id("amtg"), conferencing_provider, status)
        self.appointments[appointment_id] = {
            "id": appointment_id,
            "object": "appointment",
            "status": "scheduled",
            "start_at": None,
            "end_at": None,
            "created_at": None,
            "updated_at": None,
            "provider": rng.choice(self._hosts),
            "meeting": meeting,
            "_time_zone": time_zone,
            "_with_offset": rng.random() > 0.1,
        }
        self._set_times(appointment_id, begin, begin + timedelta(minutes=minutes))
        return self._emit(appointment_id, "appointment.created", created=True)

    def create_meeting(self, appointment_id: str) -> Delivery:
        """``appointment.meeting.updated``: the conferencing provider created the meeting."""
        meeting = self._meeting(appointment_id)
        meeting["status"] = "created"
        meeting["error_message"] = None
        if meeting["external_meeting_id"] is None:
            number = str(self.rng.randrange(80_000_000_000, 99_999_999_999))
            meeting["external_meeting_id"] = number
            meeting["password"] = shapes.token(self.rng, 6)
            if meeting["conferencing_provider"] == "google_meet":
                code = shapes.token(self.rng, 10).lower()
                meeting["join_url"] = f"https://meet.google.com/{code[:3]}-{code[3:7]}-{code[7:]}"
                meeting["password"] = None
            else:
                meeting["join_url"] = f"https://zoom.us/j/{number}"
                meeting["host_url"] = self._host_url(appointment_id)
        return self._emit(appointment_id, "appointment.meeting.updated")

    def fail_meeting(self, appointment_id: str) -> Delivery:
        """``appointment.meeting.create_failed``: the latest attempt failed."""
        meeting = self._meeting(appointment_id)
        meeting["status"] = "failed"
        meeting["error_message"] = self.rng.choice(_FAILURES)
        return self._emit(appointment_id, "appointment.meeting.create_failed")

    def rotate_host_url(self, appointment_id: str) -> Delivery:
        """``appointment.meeting.updated``: same meeting, new host token (seed 001)."""
        meeting = self._meeting(appointment_id)
        meeting["host_url"] = self._host_url(appointment_id)
        return self._emit(appointment_id, "appointment.meeting.updated")

    def reschedule(self, appointment_id: str, *, start_at: datetime | None = None) -> Delivery:
        """``appointment.rescheduled``: new times; a created meeting goes ``update_pending``."""
        appointment = self.appointments[appointment_id]
        old_start = datetime.fromisoformat(appointment["start_at"]["utc"])
        old_end = datetime.fromisoformat(appointment["end_at"]["utc"])
        begin = start_at or old_start + timedelta(hours=self.rng.choice((-3, 1, 2, 24, 48)))
        self._set_times(appointment_id, begin, begin + (old_end - old_start))
        meeting = appointment["meeting"]
        if meeting is not None and meeting["status"] == "created":
            meeting["status"] = "update_pending"
        return self._emit(appointment_id, "appointment.rescheduled")

    def replace_meeting(
        self, appointment_id: str, *, announce_previous: bool = True, failed: bool = False
    ) -> Delivery:
        """``appointment.meeting.replaced`` (or ``replace_failed``): a brand-new meeting id.

        The reschedule routed the appointment to another host. ``previous_attributes`` names
        the old meeting unless ``announce_previous`` is false (the contract: "may be given").
        """
        appointment = self.appointments[appointment_id]
        old = self._meeting(appointment_id)
        appointment["provider"] = self.rng.choice(
            [host for host in self._hosts if host["id"] != appointment["provider"]["id"]]
        )
        new = shapes.meeting(self._new_id("amtg"), old["conferencing_provider"], "pending")
        if failed:
            new["status"] = "failed"
            new["error_message"] = self.rng.choice(_FAILURES)
        appointment["meeting"] = new
        kind = "replace_failed" if failed else "replaced"
        previous = {"meeting": {"id": old["id"]}} if announce_previous else None
        return self._emit(appointment_id, f"appointment.meeting.{kind}", previous=previous)

    def cancel(self, appointment_id: str) -> Delivery:
        """``appointment.canceled``: a live meeting goes ``cancel_pending``."""
        appointment = self.appointments[appointment_id]
        appointment["status"] = "canceled"
        meeting = appointment["meeting"]
        if meeting is not None and meeting["status"] not in ("skipped", "canceled"):
            meeting["status"] = "cancel_pending"
            meeting["error_message"] = None
        return self._emit(appointment_id, "appointment.canceled")

    def confirm_cancel(self, appointment_id: str) -> Delivery:
        """``appointment.meeting.updated``: the conferencing provider canceled the meeting."""
        self._meeting(appointment_id)["status"] = "canceled"
        return self._emit(appointment_id, "appointment.meeting.updated")

    # -- internals ---------------------------------------------------------------------------

    def _emit(
        self,
        appointment_id: str,
        event_type: str,
        *,
        created: bool = False,
        previous: dict[str, Any] | None = None,
    ) -> Delivery:
        self.now += timedelta(microseconds=self.rng.randint(3_000, 2_500_000))
        stamp = shapes.iso_micros(self.now)
        appointment = self.appointments[appointment_id]
        if created:
            appointment["created_at"] = stamp
        appointment["updated_at"] = stamp
        data: dict[str, Any] = {"type": event_type, "object": public(appointment)}
        if previous is not None:
            data["previous_attributes"] = previous
        event_id = self._new_id("evt")
        envelope = {
            "id": event_id,
            "account_id": self.envelope_account_id,
            "version": "1.0",
            "created_at": stamp,
            "data": data,
        }
        delivery = Delivery(event_id, event_type, appointment_id, self.now, orjson.dumps(envelope))
        self.history.append(delivery)
        return delivery

    def _meeting(self, appointment_id: str) -> dict[str, Any]:
        meeting = self.appointments[appointment_id]["meeting"]
        if meeting is None:
            raise ValueError(f"{appointment_id} has no meeting")
        result: dict[str, Any] = meeting
        return result

    def _set_times(self, appointment_id: str, begin: datetime, end: datetime) -> None:
        appointment = self.appointments[appointment_id]
        zone, offset = appointment["_time_zone"], appointment["_with_offset"]
        appointment["start_at"] = shapes.zoned(begin, zone, with_offset=offset)
        appointment["end_at"] = shapes.zoned(end, zone, with_offset=offset)

    def _host_url(self, appointment_id: str) -> str:
        return shapes.host_url(self.booking_domain, appointment_id, self.rng)

    def _random_start(self) -> datetime:
        """Mostly upcoming within days; some in progress, some ended today, a few older."""
        rng, now = self.rng, self.start
        roll = rng.random()
        if roll < 0.70:
            slot = now + timedelta(minutes=rng.randint(1, 5 * 24 * 4) * 15)
            return slot.replace(minute=slot.minute // 15 * 15, second=0, microsecond=0)
        if roll < 0.80:
            return now - timedelta(minutes=rng.randint(1, 14))
        if roll < 0.93:
            return now - timedelta(minutes=rng.randint(90, 23 * 60))
        return now - timedelta(days=rng.randint(2, 10), minutes=rng.randint(0, 600))

    def _new_id(self, prefix: str) -> str:
        while True:
            candidate = f"{prefix}_{shapes.token(self.rng)}"
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate


def public(appointment: dict[str, Any]) -> dict[str, Any]:
    """The Appointment as the provider shows it (a deep copy, without our private keys)."""
    return {k: copy.deepcopy(v) for k, v in appointment.items() if not k.startswith("_")}

