"""Consularia Connect's truth: appointments with participants, a simulated clock, a change log.

Every public mutation changes the truth, moves the simulated wall time (``sim.now``) on by a
second to a few minutes and returns the ``Change`` it made (Consularia sends no webhooks: the
log is for tests, which compare the mirror with ``sim.appointments`` after a sweep).

- ``create``: ``scheduled``, 1-4 participants (one ``moderator``), 15..120 minutes;
- ``reschedule`` (start and/or duration), ``retitle``: only while ``scheduled`` (the API
  refuses to update active and completed appointments, says its OpenAPI excerpt);
- ``add_participant`` / ``remove_participant`` / ``rename_participant`` / ``change_role``;
- ``set_status``: ``active``, ``completed``, ``cancelled`` (the values are undocumented:
  ours, a guess; ``cancelled`` is the spelling a Django app would likely use);
- ``delete``: gone; the API answers 404 for it.

``updated_at`` moves with every change (participants included). ``start_date_time`` is served
as ``...Z`` or, for about one appointment in five, in the create example's form
(``2025-10-30 15:26:22+00:00``): both appear in the excerpt.

Paging shifts: with ``churn_per_page`` > 0, the API creates or deletes that many appointments
after serving each list page (its own generator, ``churn_rng``), so a client's next page sees
rows moved. The API's randomness never touches ``rng``: what a seed plays stays the same
whatever the API serves meanwhile.
"""

from __future__ import annotations

import copy
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from meetsync.simulator.clock import Clock
from meetsync.simulator.faults import Faults

ORGANIZATION = "Consularia Demo Org"
STATUSES = ("scheduled", "active", "completed", "cancelled")
ROLES = ("moderator", "participant")
_NAMES = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov",
          "Donald Knuth", "Frances Allen", "John Backus", "Hedy Lamarr", "Katherine Johnson")
_TITLES = ("Consultation", "Visa interview", "Follow-up", "Passport renewal", "Notary session",
           "Intake call")  # fmt: skip
_CONFIG_FIELDS = ("breakout_rooms_enabled", "whiteboard_enabled", "chat_enabled",
                  "join_screen_enabled", "screenshare_enabled", "raise_hand_enabled")


@dataclass(frozen=True, slots=True)
class Change:
    """One change to the truth, in true order."""

    kind: str
    appointment_id: str
    at: str  # the simulated wall time, ISO-8601 UTC


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micros(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ConsulariaModel:
    """A deterministic Consularia Connect's truth under ``seed``: its appointments and log (the
    API over it is ``api``, the workload that changes it ``workload``).

    ``start`` is the simulated "now" appointments are spread around (default: the current
    time; pass it for byte-identical runs). ``clock`` (monotonic seconds) times the API's rate
    limit. ``token`` is the API token the API accepts (default: drawn from the seed).
    """

    def __init__(
        self,
        seed: int,
        *,
        start: datetime | None = None,
        clock: Clock | None = None,
        token: str | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.churn_rng = random.Random(f"consularia-churn:{seed}")
        self.begin = (start or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
        self.now = self.begin
        self.clock: Clock = clock or time.monotonic
        drawn = random.Random(f"consularia-token:{seed}").getrandbits(128)
        self.token = token or f"{drawn:032x}"
        self.appointments: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.history: list[Change] = []
        self.faults = Faults()
        self.churn_per_page = 0
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()

    # -- mutations -------------------------------------------------------------------------

    def create(self, *, start: datetime | None = None, rng: random.Random | None = None) -> Change:
        rng = rng or self.rng
        self._tick(rng)
        appointment_id = self._uuid(rng)
        if start is None:
            start = self.now + timedelta(minutes=rng.randint(-2 * 60, 14 * 24 * 60))
        start = start.replace(second=0, microsecond=0)
        moderator = self._participant(rng, "moderator")
        others = [self._participant(rng, "participant") for _ in range(rng.randint(0, 3))]
        stamp = iso_micros(self.now)
        self.appointments[appointment_id] = {
            "id": appointment_id,
            "title": rng.choice(_TITLES),
            "start_date_time": start,
            "duration_minutes": rng.choice((15, 30, 30, 45, 60, 60, 90, 120)),
            "status": "scheduled",
            "config": {name: rng.random() < 0.5 for name in rng.sample(_CONFIG_FIELDS, 3)},
            "participants": [moderator, *others],
            "created_at": stamp,
            "updated_at": stamp,
            "_spaced": rng.random() < 0.2,
        }
        return self._log("created", appointment_id)

    def reschedule(self, appointment_id: str) -> Change:
        rng = self.rng
        self._tick(rng)
        appointment = self._scheduled(appointment_id)
        if rng.random() < 0.7:
            appointment["start_date_time"] += timedelta(minutes=rng.choice((-60, -30, 30, 60,
                                                                            24 * 60)))
        else:
            appointment["duration_minutes"] = rng.choice((15, 30, 45, 60, 90))
        return self._touched("rescheduled", appointment_id)

    def retitle(self, appointment_id: str) -> Change:
        self._tick(self.rng)
        self._scheduled(appointment_id)["title"] = self.rng.choice(_TITLES) + " (updated)"
        return self._touched("retitled", appointment_id)

    def add_participant(self, appointment_id: str) -> Change:
        self._tick(self.rng)
        self.appointments[appointment_id]["participants"].append(
            self._participant(self.rng, "participant"))
        return self._touched("participant_added", appointment_id)

    def remove_participant(self, appointment_id: str) -> Change:
        self._tick(self.rng)
        people = self.appointments[appointment_id]["participants"]
        if len(people) > 1:
            people.pop(self.rng.randrange(1, len(people)))
        return self._touched("participant_removed", appointment_id)

    def rename_participant(self, appointment_id: str) -> Change:
        self._tick(self.rng)
        person = self.rng.choice(self.appointments[appointment_id]["participants"])
        person["display_name"] = self.rng.choice(_NAMES) + " " + self.rng.choice("ABCDEFGH") + "."
        return self._touched("participant_renamed", appointment_id)

    def change_role(self, appointment_id: str) -> Change:
        self._tick(self.rng)
        person = self.rng.choice(self.appointments[appointment_id]["participants"])
        person["role"] = "participant" if person["role"] == "moderator" else "moderator"
        return self._touched("role_changed", appointment_id)

    def set_status(self, appointment_id: str, status: str) -> Change:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._tick(self.rng)
        self.appointments[appointment_id]["status"] = status
        return self._touched(f"status:{status}", appointment_id)

    def delete(self, appointment_id: str, *, rng: random.Random | None = None) -> Change:
        self._tick(rng or self.rng)
        del self.appointments[appointment_id]
        self.deleted.add(appointment_id)
        return self._log("deleted", appointment_id)

    def churn(self) -> None:
        """What the API does after each list page when ``churn_per_page`` is set: create an
        appointment or delete one, drawn from ``churn_rng``."""
        rng = self.churn_rng
        for _ in range(self.churn_per_page):
            if self.appointments and rng.random() < 0.5:
                self.delete(rng.choice(sorted(self.appointments)), rng=rng)
            else:
                self.create(start=self.now + timedelta(minutes=rng.randint(-600, 600)), rng=rng)

    # -- views -----------------------------------------------------------------------------

    def detail(self, appointment_id: str) -> dict[str, Any] | None:
        """``GET /appointments/{id}/``'s body; None when unknown or deleted."""
        appointment = self.appointments.get(appointment_id)
        if appointment is None:
            return None
        shown = {k: copy.deepcopy(v) for k, v in appointment.items() if not k.startswith("_")}
        shown["start_date_time"] = self._start_text(appointment)
        return shown

    def list_item(self, appointment: dict[str, Any]) -> dict[str, Any]:
        """One ``results`` item of ``GET /appointments/``."""
        return {
            "id": appointment["id"],
            "title": appointment["title"],
            "start_date_time": self._start_text(appointment),
            "duration_minutes": appointment["duration_minutes"],
            "status": appointment["status"],
            "participant_count": len(appointment["participants"]),
            "organization_name": ORGANIZATION,
            "created_at": appointment["created_at"],
        }

    def end_of(self, appointment_id: str) -> datetime:
        appointment = self.appointments[appointment_id]
        start: datetime = appointment["start_date_time"]
        return start + timedelta(minutes=appointment["duration_minutes"])

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _start_text(appointment: dict[str, Any]) -> str:
        start: datetime = appointment["start_date_time"]
        return start.isoformat(sep=" ") if appointment["_spaced"] else iso(start)

    def _scheduled(self, appointment_id: str) -> dict[str, Any]:
        appointment = self.appointments[appointment_id]
        if appointment["status"] != "scheduled":
            raise ValueError("only scheduled appointments can be updated")
        return appointment

    def _participant(self, rng: random.Random, role: str) -> dict[str, Any]:
        name = rng.choice(_NAMES)
        handle = name.lower().replace(" ", ".") + str(rng.randint(1, 999))
        return {"id": self._uuid(rng), "unique_id": f"{handle}@example.com",
                "display_name": name, "role": role}

    @staticmethod
    def _uuid(rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def _tick(self, rng: random.Random) -> None:
        self.now += timedelta(milliseconds=rng.randint(1_000, 180_000))

    def _touched(self, kind: str, appointment_id: str) -> Change:
        self.appointments[appointment_id]["updated_at"] = iso_micros(self.now)
        return self._log(kind, appointment_id)

    def _log(self, kind: str, appointment_id: str) -> Change:
        change = Change(kind, appointment_id, iso(self.now))
        self.history.append(change)
        return change


__all__ = ["ORGANIZATION", "ROLES", "STATUSES", "Change", "ConsulariaModel", "iso"]
