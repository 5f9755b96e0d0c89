"""Subscribers' settings: ``[subscribers.NAME]`` tables (secret as a string, a list or
``{ env = "VAR" }``, filters), ``MEETSYNC_SUBSCRIBER_URL`` + ``MEETSYNC_SUBSCRIBER_SECRET`` for
``default``, problems named without their values; and who gets credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetsync.config import masked
from meetsync.providers.keys import PROVIDER_KEYS
from meetsync.settings import SettingsError, Subscriber
from meetsync.worker.subscribers import without_credentials
from tests.settings.test_config_file import load

A = "whsec_c3Vic2NyaWJlci1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg=="
B = "whsec_bmV4dC1zdWJzY3JpYmVyLXNlY3JldC0wMTIzNDU2Nzg5YWI="
TOKEN = "url-token-planted-0xdeadbeef"


def problems(tmp_path: Path, text: str, **env: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, text, **env)
    for value in (A, B, TOKEN, A.removeprefix("whsec_")):
        assert value not in str(caught.value)
    return list(caught.value.problems)


def test_subscribers_from_the_file_and_the_environment(tmp_path: Path) -> None:
    settings = load(tmp_path, f"""
[subscribers.crm]
url = "https://crm.example/hooks/meetsync?token={TOKEN}"
secret = ["{A}", "{B}"]
providers = ["savvycal", "zoom"]
accounts = ["acme"]
types = ["meeting", "appointment"]

[subscribers.billing]
url = "http://127.0.0.1:9000/hook"
secret = {{ env = "BILLING_SECRET" }}
""", BILLING_SECRET=A, MEETSYNC_SUBSCRIBER_URL="https://app.example/hook",
        MEETSYNC_SUBSCRIBER_SECRET=f"{A},{B}")
    by_name = {s.name: s for s in settings.subscribers}
    assert set(by_name) == {"default", "crm", "billing"}
    crm = by_name["crm"]
    assert crm.url.endswith(TOKEN) and crm.secrets == (A, B)
    assert (crm.providers, crm.accounts, crm.types) == (
        ("savvycal", "zoom"), ("acme",), ("meeting", "appointment"))
    assert crm.wants("zoom", "acme", "meeting")
    assert not crm.wants("zoom", "other", "meeting")
    assert not crm.wants("zoom", "acme", "participant")
    assert by_name["billing"].secrets == (A,) and by_name["default"].secrets == (A, B)
    assert by_name["billing"].wants("savvycal", None, "occurrence")  # no filter: everything
    shown = masked(settings, PROVIDER_KEYS)
    assert TOKEN not in repr(shown) and A not in repr(shown) and TOKEN not in repr(settings)
    assert shown["subscribers"]["crm"]["url"] == "https://crm.example/…"  # type: ignore[index]


def test_every_subscriber_problem_is_named_without_its_value(tmp_path: Path) -> None:
    found = problems(tmp_path, f"""
[subscribers.one]
url = "ftp://x.example/{TOKEN}"
secret = "{A.removeprefix("whsec_")}"

[subscribers.two]
url = "https://x.example/"
secret = "whsec_!!{TOKEN}"
types = ["meetings"]
providers = ["nope"]
colour = "red"

[subscribers.three]
url = "https://x.example/"

[subscribers.Bad]
url = "https://x.example/"
secret = "{A}"
""", MEETSYNC_SUBSCRIBER_URL="https://x.example/")
    text = "\n".join(found)
    assert "subscribers.one.url must be an http:// or https:// URL" in text
    assert "subscribers.one.secret must start with whsec_" in text
    assert "subscribers.two.secret must be whsec_ followed by base64" in text
    assert "subscribers.two.types must name only appointment, meeting" in text
    assert "subscribers.two.providers must name only" in text
    assert "subscribers.two.colour is not a known setting" in text
    assert "subscribers.three.secret must be set" in text
    assert "subscribers.Bad must be named like" in text
    assert ("MEETSYNC_SUBSCRIBER_URL and MEETSYNC_SUBSCRIBER_SECRET must be set together"
            in text)


def test_default_in_both_places_is_an_error(tmp_path: Path) -> None:
    found = problems(tmp_path, f"""
[subscribers.default]
url = "https://x.example/"
secret = "{A}"
""", MEETSYNC_SUBSCRIBER_URL="https://y.example/", MEETSYNC_SUBSCRIBER_SECRET=A)
    assert any("subscribers.default is also defined by the environment" in p for p in found)


@pytest.mark.parametrize(("url", "gets"), [
    ("https://crm.example/hook", True),
    ("http://127.0.0.1:8080/hook", True),
    ("http://localhost/hook", True),
    ("http://[::1]:8080/hook", True),
    ("http://crm.example/hook", False),
    ("http://10.0.0.5/hook", False),
    ("http://127.0.0.1.nip.io/hook", False),
])
def test_credentials_go_only_over_tls_or_to_loopback(url: str, gets: bool) -> None:
    assert Subscriber("s", url, (A,)).gets_credentials is gets


def test_credentials_are_stripped_everywhere_in_the_data() -> None:
    data = {"id": "a", "meeting": {"host_url": "https://h?zak=1", "password": "pw",
                                   "join_url": "https://j",
                                   "linked": {"host_url": "https://z?zak=2"}},
            "participants": [{"id": "p", "password": "x"}]}
    stripped = without_credentials(data)
    assert stripped == {"id": "a", "meeting": {"host_url": None, "password": None,
                                               "join_url": "https://j",
                                               "linked": {"host_url": None}},
                        "participants": [{"id": "p", "password": None}]}


def test_the_documented_receiver_verifies_what_the_worker_signs() -> None:
    """The receiver example of docs/mirror.md, run as written against a signed delivery."""
    from datetime import UTC, datetime

    from meetsync.worker.subscribers import signed_headers

    doc = (Path(__file__).parents[2] / "docs" / "mirror.md").read_text()
    section = doc[doc.index("## Subscribers"):]
    code = section[section.index("```python\n") + 10:]
    code = code[:code.index("```")].replace('"whsec_..."', repr(B))
    seen: list[object] = []
    scope: dict[str, object] = {"already_seen": lambda _id: False,
                                "apply": lambda *args: seen.append(args)}
    exec(code, scope)  # noqa: S102 - our own documentation
    receive = scope["receive"]
    body = b'{"id": "msg_crm_7", "type": "meeting.changed", "seq": 7, "data": null}'
    headers = signed_headers((A, B), "msg_crm_7", body, datetime.now(UTC))
    assert receive(body, headers) == 204  # type: ignore[operator]
    assert seen == [("meeting.changed", 7, None)]
    headers["webhook-signature"] = signed_headers((A,), "msg_crm_7", body, datetime.now(UTC))[
        "webhook-signature"]
    assert receive(body, headers) == 401  # type: ignore[operator]
