"""What the mirror can store: every string of an event found wherever it sits, and escaping that
always yields text PostgreSQL and UTF-8 take."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from meetsync.events import Event, Meeting, Occurrence, Participant
from meetsync.storable import storable, storable_value, unstorable

EVENT = Event(id="evt_1", provider="p", type="t", occurred_at=1, appointment_id="appt_1",
              meeting=Meeting(id="m_1", status="created", join_url="https://x.test/j/1"),
              participants=(Participant(id="u_1", display_name="Ann"),),
              occurrences=(Occurrence(id="o_1", status="available"),))


def bad(text: str) -> bool:
    return any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(st.text())
def test_storable_text_is_always_storable_and_unchanged_when_it_was(text: str) -> None:
    made = storable(text)
    assert unstorable(made) is None
    made.encode("utf-8")  # a lone surrogate would raise here
    assert "\x00" not in made
    if not bad(text):
        assert made == text


@given(st.text())
def test_a_string_anywhere_in_an_event_is_found(text: str) -> None:
    assert EVENT.meeting is not None and EVENT.participants and EVENT.occurrences
    where = {
        "appointment_id": replace(EVENT, appointment_id=text),
        "meeting.join_url": replace(EVENT, meeting=replace(EVENT.meeting, join_url=text)),
        "participants[0].display_name": replace(EVENT, participants=(
            replace(EVENT.participants[0], display_name=text),)),
        "occurrences[0].status": replace(EVENT, occurrences=(
            replace(EVENT.occurrences[0], status=text),)),
    }
    for path, event in where.items():
        assert unstorable(event) == (path if bad(text) else None)


def test_an_escaped_nul_in_the_text_is_not_a_nul() -> None:
    assert unstorable(replace(EVENT, appointment_id="a\\u0000b")) is None


def test_json_values_are_made_storable_keys_included() -> None:
    value = {"a\x00": ["x\ud800", 1, None, {"k": "\x00"}]}
    assert storable_value(value) == {"a\\u0000": ["x\\ud800", 1, None, {"k": "\\u0000"}]}
    assert unstorable(storable_value(value)) is None
    assert unstorable(value) is not None
