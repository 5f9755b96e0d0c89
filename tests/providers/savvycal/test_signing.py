"""Signatures: the Standard Webhooks vector, its tolerance, native HMAC, rotation, bad headers."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from meetsync.providers import SignatureError
from meetsync.providers.savvycal import SavvyCalWebhooks
from meetsync.settings import SettingsError
from tests.helpers.savvycal import savvycal_settings

if TYPE_CHECKING:
    from tests.providers.savvycal.samples import Samples

NATIVE_SECRET = "savvycal-native-secret"
NATIVE_SECRET_NEXT = "savvycal-native-secret-rotated"
STANDARD_SECRET_NEXT = "whsec_dGhlLW5leHQtc2VjcmV0LWZvci1yb3RhdGlvbg=="
# The Standard Webhooks reference vector (github.com/standard-webhooks/standard-webhooks tests).
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def frozen(at: float) -> SavvyCalWebhooks:
    return SavvyCalWebhooks((NATIVE_SECRET,), (STANDARD_SECRET,), clock=lambda: at)


def vector_headers(prefix: str, signature: str = VECTOR_SIGNATURE) -> dict[str, str]:
    return {
        f"{prefix}id": VECTOR_MSG_ID,
        f"{prefix}timestamp": str(VECTOR_TIMESTAMP),
        f"{prefix}signature": signature,
    }


@pytest.mark.parametrize("prefix", ["webhook-", "svix-", "Webhook-", "SVIX-"])
def test_standard_vector_verifies_with_either_header_prefix(prefix: str) -> None:
    frozen(VECTOR_TIMESTAMP).verify(VECTOR_PAYLOAD, vector_headers(prefix))


def test_standard_vector_with_one_changed_character_is_rejected() -> None:
    tampered = VECTOR_SIGNATURE[:-2] + "A="
    with pytest.raises(SignatureError, match="invalid signature"):
        frozen(VECTOR_TIMESTAMP).verify(VECTOR_PAYLOAD, vector_headers("webhook-", tampered))


def test_standard_vector_is_too_old_for_the_real_clock() -> None:
    provider = SavvyCalWebhooks(standard_secrets=(STANDARD_SECRET,))
    with pytest.raises(SignatureError, match="tolerance"):
        provider.verify(VECTOR_PAYLOAD, vector_headers("webhook-"))


@pytest.mark.parametrize("skew", [-301, 301])
def test_standard_timestamp_outside_five_minutes_either_way_is_rejected(skew: int) -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        frozen(VECTOR_TIMESTAMP + skew).verify(VECTOR_PAYLOAD, vector_headers("webhook-"))


@pytest.mark.parametrize("skew", [-300, 300])
def test_standard_timestamp_at_the_edge_of_tolerance_is_accepted(skew: int) -> None:
    frozen(VECTOR_TIMESTAMP + skew).verify(VECTOR_PAYLOAD, vector_headers("webhook-"))


def test_standard_any_v1_entry_may_match() -> None:
    header = f"v2,abc v1,!!notbase64 v1,AAAA {VECTOR_SIGNATURE}"
    frozen(VECTOR_TIMESTAMP).verify(VECTOR_PAYLOAD, vector_headers("svix-", header))


def test_standard_secrets_rotate(samples: Samples) -> None:
    provider = SavvyCalWebhooks(standard_secrets=(STANDARD_SECRET, STANDARD_SECRET_NEXT))
    provider.verify(b"{}", samples.standard_headers(b"{}", STANDARD_SECRET))
    provider.verify(b"{}", samples.standard_headers(b"{}", STANDARD_SECRET_NEXT))


def test_standard_secret_not_configured_is_rejected(samples: Samples) -> None:
    provider = SavvyCalWebhooks(standard_secrets=(STANDARD_SECRET,))
    with pytest.raises(SignatureError, match="invalid signature"):
        provider.verify(b"{}", samples.standard_headers(b"{}", STANDARD_SECRET_NEXT))


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-id": "msg_1"},
        {"webhook-id": "", "webhook-timestamp": "1614265330", "webhook-signature": "v1,x"},
        {"webhook-id": "msg_1", "webhook-timestamp": "soon", "webhook-signature": "v1,x"},
        {"webhook-id": "msg_1", "webhook-timestamp": "1e9", "webhook-signature": "v1,x"},
        {"webhook-id": "msg_1", "webhook-timestamp": "9" * 40, "webhook-signature": "v1,x"},
        {"webhook-id": "msg_1", "webhook-timestamp": "1614265330", "webhook-signature": ""},
        {"webhook-id": "msg_1", "webhook-timestamp": "1614265330", "webhook-signature": "v1"},
        {"webhook-id": "msg_1", "webhook-timestamp": "1614265330", "webhook-signature": "v1,é"},
        {"svix-id": "msg_1", "svix-timestamp": "1614265330", "svix-signature": ",,, v1, ,v1"},
    ],
)
def test_malformed_standard_headers_are_signature_errors(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        frozen(VECTOR_TIMESTAMP).verify(VECTOR_PAYLOAD, headers)


def test_standard_body_that_is_not_utf8_is_a_signature_error() -> None:
    headers = vector_headers("webhook-")
    with pytest.raises(SignatureError, match="UTF-8"):
        frozen(VECTOR_TIMESTAMP).verify(b"\xff\xfe", headers)


def test_a_delivery_carrying_both_schemes_is_accepted_when_either_verifies(
    samples: Samples,
) -> None:
    # relayed through Svix: an incomplete Standard Webhooks set beside a valid native signature
    headers = {**samples.native_headers(VECTOR_PAYLOAD), "webhook-id": VECTOR_MSG_ID}
    frozen(VECTOR_TIMESTAMP).verify(VECTOR_PAYLOAD, headers)
    forged = {"x-savvycal-signature": "sha256=" + "0" * 64, "webhook-id": VECTOR_MSG_ID}
    with pytest.raises(SignatureError, match="invalid signature"):
        frozen(VECTOR_TIMESTAMP).verify(VECTOR_PAYLOAD, forged)


def test_native_signature_verifies_in_upper_or_lower_case(samples: Samples) -> None:
    provider = SavvyCalWebhooks(savvycal_secrets=(NATIVE_SECRET,))
    headers = samples.native_headers(b'{"a": 1}')
    provider.verify(b'{"a": 1}', headers)
    provider.verify(b'{"a": 1}', {"X-SavvyCal-Signature": headers["x-savvycal-signature"].lower()})


def test_native_signature_covers_the_raw_bytes(samples: Samples) -> None:
    provider = SavvyCalWebhooks(savvycal_secrets=(NATIVE_SECRET,))
    with pytest.raises(SignatureError, match="invalid signature"):
        provider.verify(b'{"a":1}', samples.native_headers(b'{"a": 1}'))


def test_native_secrets_rotate_and_unknown_secrets_are_rejected(samples: Samples) -> None:
    provider = SavvyCalWebhooks(savvycal_secrets=(NATIVE_SECRET, NATIVE_SECRET_NEXT))
    provider.verify(b"{}", samples.native_headers(b"{}", NATIVE_SECRET))
    provider.verify(b"{}", samples.native_headers(b"{}", NATIVE_SECRET_NEXT))
    with pytest.raises(SignatureError, match="invalid signature"):
        provider.verify(b"{}", samples.native_headers(b"{}", "some-other-secret"))


@pytest.mark.parametrize("value", ["", "sha256=", "md5=ABCD", "ABCDEF", "sha256=ÄÖ", "sha256=zz"])
def test_malformed_native_headers_are_signature_errors(value: str) -> None:
    with pytest.raises(SignatureError):
        frozen(time.time()).verify(b"{}", {"x-savvycal-signature": value})


def test_a_scheme_without_a_secret_accepts_nothing(samples: Samples) -> None:
    only_native = SavvyCalWebhooks(savvycal_secrets=(NATIVE_SECRET,))
    with pytest.raises(SignatureError, match="no secret configured"):
        only_native.verify(b"{}", samples.standard_headers(b"{}"))
    only_standard = SavvyCalWebhooks(standard_secrets=(STANDARD_SECRET,))
    with pytest.raises(SignatureError, match="no secret configured"):
        only_standard.verify(b"{}", samples.native_headers(b"{}"))


def test_no_signature_header_is_rejected() -> None:
    with pytest.raises(SignatureError, match="missing signature"):
        frozen(time.time()).verify(b"{}", {"content-type": "application/json"})


@pytest.mark.parametrize("secret", ["whsec_", "whsec_!!!!", "whsec_a"])
def test_a_bad_whsec_secret_fails_at_construction_naming_the_setting(secret: str) -> None:
    settings = savvycal_settings(standard_webhook_secrets=(secret,))
    with pytest.raises(SettingsError, match="STANDARD_WEBHOOK_SECRET") as caught:
        SavvyCalWebhooks.from_settings(settings)
    assert str(caught.value) == "STANDARD_WEBHOOK_SECRET is not a valid whsec_ secret"
    assert caught.value.__cause__ is None
