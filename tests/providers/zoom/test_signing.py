"""Zoom's v0 signature: raw body, timestamp window, rotation, and the URL validation answer."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from meetsync.providers import SignatureError
from meetsync.providers.zoom import signing

BODY = b'{"event":"meeting.created","event_ts":1740841200123,"payload":{"object":{"id":1}}}'
NOW = 1_740_841_200


def sign(secret: str, timestamp: str, body: bytes = BODY) -> dict[str, str]:
    message = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {"x-zm-signature": f"v0={digest}", "x-zm-request-timestamp": timestamp}


def test_known_vector() -> None:
    # computed independently: HMAC-SHA256("secret", "v0:1700000000:{}")
    expected = hmac.new(b"secret", b"v0:1700000000:{}", hashlib.sha256).hexdigest()
    headers = {"x-zm-signature": "v0=" + expected, "x-zm-request-timestamp": "1700000000"}
    assert signing.verify(b"{}", headers, ["secret"], now=1_700_000_000) == 0


def test_valid_signature_names_the_secret() -> None:
    headers = sign("new", str(NOW))
    assert signing.verify(BODY, headers, ["old", "new"], now=NOW) == 1
    assert signing.verify(BODY, sign("old", str(NOW)), ["old", "new"], now=NOW) == 0


def test_header_case_does_not_matter() -> None:
    headers = {k.upper(): v for k, v in sign("s", str(NOW)).items()}
    assert signing.verify(BODY, headers, ["s"], now=NOW) == 0


def test_raw_body_is_signed_not_reserialised() -> None:
    headers = sign("s", str(NOW))
    with pytest.raises(SignatureError, match="invalid signature"):
        signing.verify(BODY.replace(b":", b": "), headers, ["s"], now=NOW)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (sign("wrong", str(NOW)), "invalid signature"),
        ({"x-zm-request-timestamp": str(NOW)}, "missing"),
        ({"x-zm-signature": sign("s", str(NOW))["x-zm-signature"]}, "missing"),
        ({**sign("s", str(NOW)), "x-zm-signature": "v1=abc"}, "malformed x-zm-signature"),
        ({**sign("s", str(NOW)), "x-zm-signature": "v0=" + "é" * 64}, "malformed x-zm-signature"),
        ({**sign("s", str(NOW)), "x-zm-signature": "v0=abcd"}, "malformed x-zm-signature"),
        ({**sign("s", str(NOW)), "x-zm-request-timestamp": "soon"}, "malformed x-zm-request"),
        (sign("s", str(NOW - 301)), "outside the tolerance"),
        (sign("s", str(NOW + 301)), "outside the tolerance"),
    ],
)
def test_rejections(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message) as caught:
        signing.verify(BODY, headers, ["s"], now=NOW)
    assert "s" not in str(caught.value).split() and b"event" not in str(caught.value).encode()


def test_within_tolerance_either_way() -> None:
    assert signing.verify(BODY, sign("s", str(NOW - 300)), ["s"], now=NOW) == 0
    assert signing.verify(BODY, sign("s", str(NOW + 300)), ["s"], now=NOW) == 0


def test_no_secret_accepts_nothing() -> None:
    with pytest.raises(SignatureError, match="no secret"):
        signing.verify(BODY, sign("s", str(NOW)), [], now=NOW)


def test_messages_never_hold_the_secret() -> None:
    secret = "very-secret-token-value"
    with pytest.raises(SignatureError) as caught:
        signing.verify(BODY, sign("other", str(NOW)), [secret], now=NOW)
    assert secret not in str(caught.value)


def test_url_validation_reply() -> None:
    reply = signing.url_validation_reply("qgg8vlvZRS6UYooatFL8Aw", "shh")
    assert reply == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": hmac.new(b"shh", b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest(),
    }
