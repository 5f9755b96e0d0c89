"""Every envelope the simulator plays parses into meetsync's Event with the same ids and times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meetsync.events import Event, to_micros
from meetsync.providers.savvycal.simulator import SavvyCalSim

envelope = pytest.importorskip("meetsync.providers.savvycal.envelope")


def test_simulated_envelopes_parse() -> None:
    sim = SavvyCalSim(13, start=datetime(2025, 3, 1, 15, tzinfo=UTC))
    for delivery in sim.play(120):
        event = envelope.parse_envelope(delivery.body)
        assert isinstance(event, Event)
        obj = delivery.envelope()["data"]["object"]
        assert (event.id, event.type) == (delivery.event_id, delivery.type)
        assert event.appointment_id == delivery.appointment_id
        assert event.occurred_at == to_micros(delivery.created_at)
        assert (event.meeting.id if event.meeting else None) == (
            obj["meeting"]["id"] if obj["meeting"] else None
        )
        if delivery.type == "appointment.meeting.replaced":
            previous = delivery.envelope()["data"].get("previous_attributes")
            assert event.previous_meeting_id == (previous["meeting"]["id"] if previous else None)
