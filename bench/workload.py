"""Bench inputs from the simulator: real envelopes, their events, and signed request files."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from meetsync.events import Event
from meetsync.providers.savvycal.envelope import parse_envelope
from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim

SEED = 4
NATIVE_SECRET = "bench-native-secret"
READ_TOKEN = "bench-read-token"
SIGNATURE_HEADER = "x-savvycal-signature"

Request = tuple[str, str, dict[str, str], bytes]  # method, target, headers, body


def start_of_hour() -> datetime:
    """The current hour, so every process of a run plays the same truth."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def deliveries(appointments: int, *, seed: int = SEED, start: datetime | None = None
               ) -> list[Delivery]:
    """About three envelopes per appointment, each with a distinct event id, in true order.

    By default the simulator starts 12 hours before the current hour, so the envelopes (about
    1.25 s apart) stay behind the real clock: a receiver re-dates envelopes from the future.
    """
    start = start or start_of_hour() - timedelta(hours=12)
    return SavvyCalSim(seed, start=start).play(appointments)


def events(played: Iterable[Delivery]) -> list[Event]:
    found = []
    for delivery in played:
        parsed = parse_envelope(delivery.body)
        if isinstance(parsed, Event):
            found.append(parsed)
    return found


def renamed(pool: Sequence[Event], copy: int) -> list[Event]:
    """``pool`` again with fresh event, appointment and meeting ids: as many more distinct
    events as needed, without replaying the simulator."""
    suffix = f"x{copy}"

    def fresh(event: Event) -> Event:
        meeting = event.meeting and replace(event.meeting, id=event.meeting.id + suffix)
        previous = event.previous_meeting_id and event.previous_meeting_id + suffix
        return replace(event, id=event.id + suffix, appointment_id=event.appointment_id + suffix,
                       meeting=meeting, previous_meeting_id=previous)

    return [fresh(event) for event in pool]


def native_signature(body: bytes, secret: str = NATIVE_SECRET) -> str:
    """``sha256=<UPPERCASE hex HMAC-SHA256(secret, body)>`` (SavvyCal's native signing)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().upper()


def write_requests(path: Path, lines: Iterable[Request]) -> int:
    """The request file ``bench/requests.lua`` cycles through: one request per line,
    ``METHOD<TAB>PATH<TAB>name: value|name: value<TAB>body``."""
    written = 0
    with path.open("wb") as out:
        for method, target, headers, body in lines:
            if b"\n" in body or b"\t" in body:
                raise ValueError("request bodies must be single-line JSON")
            joined = "|".join(f"{name}: {value}" for name, value in headers.items())
            out.write(f"{method}\t{target}\t{joined}\t".encode() + body + b"\n")
            written += 1
    return written


def signed_posts(played: Iterable[Delivery]) -> Iterable[Request]:
    for delivery in played:
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: native_signature(delivery.body),
            "x-savvycal-webhook-id": "wh_bench",
        }
        yield "POST", "/webhooks/savvycal", headers, delivery.body


def meeting_reads(appointment_ids: Iterable[str]) -> Iterable[Request]:
    headers = {"authorization": f"Bearer {READ_TOKEN}"}
    for appointment_id in appointment_ids:
        yield "GET", f"/v1/appointments/{appointment_id}/meeting", headers, b""
