"""Avon deliveries: every documented envelope version is a Hint, verify picks the account,
and no input raises anything but EnvelopeError."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meetsync.providers import EnvelopeError, Hint, SignatureError
from meetsync.providers.avon import PROVIDER, AvonWebhooks
from meetsync.settings import Account

APPT = "appt_2UxtAULYUrX7GVsTKePy"
OBJECT = {"id": APPT, "object": "appointment", "start_time": 1692370044000}


def hooks(*names: str) -> AvonWebhooks:
    return PROVIDER.webhooks([Account("avon", name, {}) for name in names])


def body(value: Any) -> bytes:
    return orjson.dumps(value)


@pytest.mark.parametrize("envelope", [
    # docs: created_at as ISO-8601
    {"event": "appointment.created", "created_at": "2024-02-22T20:09:46.206Z", "object": OBJECT},
    # docs: created_at as epoch milliseconds
    {"event": "appointment.completed", "created_at": 1653798303000, "object": OBJECT},
    # docs: an id wbhk_..., no created_at
    {"id": "wbhk_edqhVXeQ1yPxw3JDJl2C", "event": "appointment.updated", "object": OBJECT},
    # guesses: other places an id may sit
    {"event": "appointment.rescheduled", "data": {"object": OBJECT}},
    {"event": "appointment.cancelled", "data": {"id": APPT}},
    {"event": "appointment.in_progress", "appointment_id": APPT},
    {"event": "appointment.started", "data": {"appointment_id": APPT}},
    {"type": "appointment.no_show", "object": {"id": APPT}},
])
def test_appointment_events_are_hints(envelope: dict[str, Any]) -> None:
    found = hooks("default").parse(body(envelope), "default")
    event = envelope.get("event", envelope.get("type"))
    assert found == Hint(appointment_id=APPT, account="default", type=event)


def test_other_events_are_their_type() -> None:
    envelope = {"event": "patient.created", "created_at": 1653798303000,
                "object": {"id": "user_Z1zXZKvqrpwxbznuW6lJ"}}
    assert hooks("default").parse(body(envelope), "default") == "patient.created"


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b"null", b'"appointment.created"',
    body({"object": OBJECT}),                                    # no event
    body({"event": "", "object": OBJECT}),
    body({"event": 7, "object": OBJECT}),
    body({"event": "appointment.created"}),                      # no id anywhere
    body({"event": "appointment.created", "object": {"id": 12}}),
    body({"event": "appointment.created", "object": {"id": "user_Z1zX"}}),
    body({"event": "appointment.created", "object": {"id": "appt_../../v2/patients"}}),
    body({"event": "appointment.created", "object": {"id": "appt_é"}}),
    body({"event": "appointment.created", "object": "appt_x"}),
])
def test_bad_envelopes(raw: bytes) -> None:
    with pytest.raises(EnvelopeError) as caught:
        hooks("default").parse(raw, "default")
    assert "appt_" not in str(caught.value).replace("appt_...", "")


def test_error_messages_never_quote_the_body() -> None:
    secret = "appt_" + "x" * 70  # too long to be an id
    with pytest.raises(EnvelopeError) as caught:
        hooks("default").parse(body({"event": "appointment.created", "object": {"id": secret}}),
                               "default")
    assert secret not in str(caught.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["appointment.created", "appointment.updated", APPT, "patient.created"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["event", "type", "object", "data", "id", "appointment_id",
                                       "created_at"]) | st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_arbitrary_json_parses_or_raises_envelope_error(value: Any) -> None:
    try:
        found = hooks("default").parse(body(value), "default")
    except EnvelopeError:
        return
    assert isinstance(found, Hint | str)
    if isinstance(found, Hint):
        assert found.appointment_id.startswith("appt_")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_envelope_error(raw: bytes) -> None:
    try:
        hooks("default").parse(raw, "default")
    except EnvelopeError:
        pass


def test_verify_one_account_takes_any_delivery() -> None:
    assert hooks("default").verify(b"anything", {}) == "default"
    assert hooks("clinic").verify(b"{}", {}, None) == "clinic"


def test_verify_path_account() -> None:
    two = hooks("east", "west")
    assert two.verify(b"{}", {}, "west") == "west"
    with pytest.raises(SignatureError):
        two.verify(b"{}", {}, "north")
    with pytest.raises(SignatureError):
        hooks("default").verify(b"{}", {}, "other")


def test_verify_several_accounts_need_the_path() -> None:
    with pytest.raises(SignatureError, match=r"several avon accounts: post to /webhooks/avon/"):
        hooks("east", "west").verify(b"{}", {})


def test_verify_no_account() -> None:
    with pytest.raises(SignatureError):
        hooks().verify(b"{}", {})
