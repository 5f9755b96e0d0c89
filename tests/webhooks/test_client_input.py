"""No value a client sends answers 5xx: every number, header, cookie and path parameter each
route parses, as arbitrary text or bytes, over real HTTP (uvicorn, real Redis, a real mirror on
each backend). A bad parameter is 400, a bad credential 401.

The cases that were 500s: ``?since=`` / ``Last-Event-ID:`` of 5,000 digits (``int()`` refuses
past 4,300), and a ``/status`` cookie of 5,000 digits or holding a raw 0xB2 byte (``"²"`` is a
digit to ``str.isdigit`` and not to ``int``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from meetsync.dev.redis_server import RedisServer
from meetsync.settings import Account, Settings
from meetsync.simulator import serve_in_background
from meetsync.store import open_store
from meetsync.webhooks import create_app
from tests.helpers.savvycal import savvycal_settings

TOKEN = "client-input-read-token"
METRICS_TOKEN = "client-input-metrics-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LONG = "9" * 5000

inputs = settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))

# Text a URL can carry (httpx percent-encodes it): anything but lone surrogates.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
NUMBERS = st.one_of(
    TEXT,
    st.text("0123456789", min_size=1, max_size=6000),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from([LONG, "0" * 5000 + "1", "²", "1²", "٣", "1e3", " 1", "+1", "-0", ""]),
)
# Bytes a header can carry: h11 sends no control bytes, so neither can a real client.
HEADER_BYTES = st.one_of(
    st.binary(max_size=60).map(lambda raw: bytes(b for b in raw if b > 0x20 and b != 0x7F)),
    st.text("0123456789", min_size=1, max_size=6000).map(str.encode),
    st.sampled_from([LONG.encode(), b"\xb2", b"1\xb2", b"\xb2.abc", b"1.\xb2", b"9" * 30]),
)


@pytest.fixture
def served(db_path: Path | str, redis_server: RedisServer) -> Iterator[str]:
    open_store(db_path).close()  # a mirror the reads really query (SQLite: the file exists)
    config: Settings = savvycal_settings(
        db_path=str(db_path), redis_url=redis_server.url, read_token=TOKEN,
        metrics_token=METRICS_TOKEN, savvycal_webhook_secrets=("client-input-secret",))
    config = config.with_account(Account("avon", "default", {}))
    with serve_in_background(create_app(config), lifespan="on") as root:
        yield root


@pytest.fixture
def http(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served, timeout=30) as client:
        yield client


def test_the_reported_inputs_are_refused_not_failed(http: httpx.Client) -> None:
    assert http.get("/v1/changes", params={"since": LONG}, headers=AUTH).status_code == 400
    assert http.get("/v1/changes", params={"limit": LONG}, headers=AUTH).status_code == 400
    stream = http.get("/v1/changes/stream", headers={**AUTH, "last-event-id": LONG})
    assert stream.status_code == 400
    for path in ("/v1/appointments/appt_%00/meeting", "/v1/savvycal/meetings/%00",
                 f"/v1/zoom/appointments/{LONG}"):  # PostgreSQL text holds no NUL
        assert http.get(path, headers=AUTH).status_code == 404
    for cookie in (LONG.encode(), b"\xb2", f"{LONG}.abc".encode(), b"1.\xb2"):
        page = http.get("/status", headers={"cookie": b"meetsync_status=" + cookie})
        assert page.status_code == 401, cookie[:20]


@inputs
@given(since=NUMBERS, limit=NUMBERS | st.none())
def test_any_change_page_cursor(http: httpx.Client, since: str, limit: str | None) -> None:
    params = {"since": since} if limit is None else {"since": since, "limit": limit}
    answer = http.get("/v1/changes", params=params, headers=AUTH)
    assert answer.status_code in (200, 400), answer.text


@inputs
@given(resume=HEADER_BYTES, since=NUMBERS)
@example(resume=b"\xb2", since=LONG)
def test_any_stream_cursor(http: httpx.Client, resume: bytes, since: str) -> None:
    for headers, params in (({**AUTH, "last-event-id": resume}, {}),
                            (AUTH, {"since": since})):
        with http.stream("GET", "/v1/changes/stream", headers=headers, params=params) as answer:
            assert answer.status_code in (200, 400)  # 200: an endless stream, left at once


@inputs
@given(cookie=HEADER_BYTES, raw=HEADER_BYTES)
def test_any_status_cookie_is_not_signed_in(http: httpx.Client, cookie: bytes, raw: bytes) -> None:
    assert http.get("/status", headers={"cookie": b"meetsync_status=" + cookie}).status_code == 401
    assert http.get("/status", headers={"cookie": raw}).status_code == 401


@inputs
@given(body=st.binary(max_size=5000) | NUMBERS.map(lambda n: f"token={n}".encode()),
       authorization=HEADER_BYTES)
def test_any_sign_in_form_or_metrics_token(
    http: httpx.Client, body: bytes, authorization: bytes
) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert http.post("/status/login", content=body, headers=form).status_code == 401
    scrape = http.get("/metrics", headers={"authorization": b"Bearer x" + authorization})
    assert scrape.status_code == 401


READS = ["/v1/appointments/{id}/meeting", "/v1/meetings/{id}", "/v1/{p}/appointments/{id}",
         "/v1/{p}/appointments/{id}/meeting", "/v1/{p}/meetings/{id}"]


@inputs
@given(route=st.sampled_from(READS), key=TEXT | st.just("appt_\x00") | st.just(LONG),
       provider=st.sampled_from(["savvycal", "zoom", "nosuch"]) | TEXT,
       fresh=st.sampled_from(["true", "false"]) | TEXT)  # a bad fresh is 400 before a lookup
def test_any_read_path_or_query(
    http: httpx.Client, route: str, key: str, provider: str, fresh: str
) -> None:
    path = route.format(id=quote(key, safe=""), p=quote(provider, safe=""))
    answer = http.get(path, params={"fresh": fresh}, headers=AUTH)
    assert answer.status_code in (200, 307, 400, 404), answer.text  # a path ..- or /-folded


@inputs
@given(account=TEXT | st.just(LONG))
def test_any_webhook_account(http: httpx.Client, account: str) -> None:
    for provider in ("savvycal", "avon"):
        answer = http.post(f"/webhooks/{provider}/{quote(account, safe='')}", content=b"{}")
        assert answer.status_code in (307, 400, 401, 404), answer.text  # 307: a trailing /


async def test_a_declared_length_of_any_size_is_too_large_not_an_error(
    db_path: Path | str, redis_server: RedisServer
) -> None:
    """uvicorn refuses a Content-Length it cannot read before the app sees it; the receiver
    must not rely on that (another server may pass it on)."""
    config = savvycal_settings(db_path=str(db_path), redis_url=redis_server.url,
                               savvycal_webhook_secrets=("client-input-secret",))
    app = create_app(config)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        for declared in (LONG, "0" * 5000 + "2000000"):
            request = client.build_request("POST", "/webhooks/savvycal", content=b"{}")
            request.headers["content-length"] = declared
            assert (await client.send(request)).status_code == 413
