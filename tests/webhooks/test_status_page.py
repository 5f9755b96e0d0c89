"""`GET /status` in a real headless browser: signing in with the read token through the form
(never in a URL or a log line), the page's figures match Redis and the mirror, and a phone-sized
screenshot is saved."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event, Meeting, iso_utc, to_micros
from meetsync.queue import EVENT_STREAM, FIELD, STATS, remember_run
from meetsync.settings import Settings
from meetsync.simulator.serve import serve_in_background
from meetsync.store import open_store
from meetsync.webhooks import create_app
from tests.helpers.savvycal import savvycal_settings

READ_TOKEN = "status-read-token-0123456789"
WRONG_TOKEN = "not-the-token-9876543210"
REPO = Path(__file__).resolve().parents[2]


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) when both are installed."""
    binary = next(filter(None, (shutil.which(name) for name in
                                ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


@pytest.fixture
def browser() -> Iterator[object]:
    found = browser_paths()
    if found is None:
        reason = "no headless browser: install chromium and chromium-driver (.ci/run does)"
        if os.environ.get("MEETSYNC_REQUIRE_BROWSER"):  # CI: a skipped browser test is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def event(n: int, provider: str, *, hours_ahead: float, host_expires_in: float | None,
          status: str = "scheduled") -> Event:
    now = datetime.now(UTC)
    start = now + timedelta(hours=hours_ahead)
    expires = (None if host_expires_in is None
               else iso_utc(now + timedelta(hours=host_expires_in)))
    return Event(
        id=f"evt_status_{n}", provider=provider, type="appointment.meeting.updated",
        occurred_at=to_micros(now) - 1_000_000 + n, appointment_id=f"appt_status_{n}",
        appointment_status=status, start_at=iso_utc(start),
        end_at=iso_utc(start + timedelta(minutes=30)),
        meeting=Meeting(id=f"amtg_status_{n}", status="created",
                        join_url=f"https://zoom.us/j/{n}",
                        host_url=f"https://host.example/{n}?token=HOST-SECRET-{n}",
                        host_url_expires_at=expires),
    )


def seed(db: Path, redis_url: str) -> None:
    """Three SavvyCal meetings ahead (two live host links, one canceled), one Zoom meeting
    whose start URL died, a dead letter, a worker's reconcile run, two events queued."""
    store = open_store(db)
    try:
        _, failed = store.apply([
            event(1, "savvycal", hours_ahead=2, host_expires_in=26),
            event(2, "savvycal", hours_ahead=5, host_expires_in=29),
            event(3, "savvycal", hours_ahead=6, host_expires_in=30, status="canceled"),
            event(4, "zoom", hours_ahead=1, host_expires_in=-0.5),
        ])
        assert failed == []
        poison = event(9, "savvycal", hours_ahead=3, host_expires_in=27)
        store.add_dead_letter(poison.id, poison.appointment_id, poison.type, "poison", 5,
                              orjson.dumps({"id": poison.id, "provider": "savvycal",
                                            "account": "default"}).decode())
        run_id = store.start_run(None, None)
        store.finish_run(run_id, outcome="partial", pages=2, api_calls=7, appointments_seen=4,
                         drift='{"meeting.join_url": 2}', repaired=2,
                         errors='["GET /appointments: HTTP 429"]')
    finally:
        store.close()

    async def remember() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await remember_run(client, "savvycal", "default", run_id)
        finally:
            await client.aclose()

    asyncio.run(remember())
    client = redis.Redis.from_url(redis_url)
    try:
        for n in (5, 6):
            client.xadd(EVENT_STREAM, {FIELD: event(n, "savvycal", hours_ahead=1,
                                                    host_expires_in=25).to_json()})
        client.hset(STATS, mapping={"applied": 4, "duplicates": 1})
    finally:
        client.close()


def mirror_figures(db: Path) -> dict[str, int]:
    """What the page should say, straight from the mirror."""
    now = iso_utc(datetime.now(UTC))
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        live = conn.execute(
            "SELECT count(*) FROM appointments a JOIN meetings m ON m.provider = a.provider"
            " AND m.id = a.meeting_id WHERE a.provider = 'savvycal' AND a.status != 'canceled'"
            " AND m.host_url IS NOT NULL AND m.host_url_expires_at > ?", (now,)).fetchone()[0]
        letters = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL").fetchone()[0]
        appointments = conn.execute(
            "SELECT count(*) FROM appointments WHERE provider = 'savvycal'").fetchone()[0]
        outcome = conn.execute(
            "SELECT outcome FROM reconcile_runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    return {"live": live, "letters": letters, "appointments": appointments, "outcome": outcome}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Settings, Path, str]]:
    server = RedisServer(data_dir=tmp_path / "redis", persistent=False).start()
    db = tmp_path / "mirror.db"
    settings = savvycal_settings(db_path=str(db), read_token=READ_TOKEN,
                                 savvycal_webhook_secrets=("status-webhook-secret",),
                                 redis_url=server.url)
    try:
        seed(db, server.url)
        with serve_in_background(create_app(settings), lifespan=True) as url:
            yield url, settings, db, server.url
    finally:
        server.stop()


def test_the_status_page_in_a_browser(
    stack: tuple[str, Settings, Path, str], browser: object, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    url, _settings, db, redis_url = stack

    # Headers work for scripts; a browser signs in through the form.
    assert httpx.get(f"{url}/status").status_code == 401
    bearer = httpx.get(f"{url}/status", headers={"authorization": f"Bearer {READ_TOKEN}"})
    assert bearer.status_code == 200 and 'name="viewport"' in bearer.text
    assert httpx.get(f"{url}/status", cookies={"meetsync_status": "9999999999.forged"}
                     ).status_code == 401

    browser.get(f"{url}/status")
    browser.find_element(By.ID, "token").send_keys(WRONG_TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 15).until(lambda page: "not the read token" in page.page_source)
    browser.find_element(By.ID, "token").send_keys(READ_TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, '[data-figure="queue_depth"]')))
    assert READ_TOKEN not in browser.current_url and browser.current_url.endswith("/status")

    def figure(name: str, account: str | None = None) -> str:
        scope = f'[data-account="{account}"] ' if account else ""
        return str(browser.find_element(By.CSS_SELECTOR,
                                        f'{scope}[data-figure="{name}"]').text)

    expected = mirror_figures(db)
    client = redis.Redis.from_url(redis_url)
    try:
        queued = client.xlen(EVENT_STREAM)
    finally:
        client.close()
    assert figure("queue_depth") == str(queued) == "2"
    assert figure("applied") == "4"
    savvycal = "savvycal/default"
    assert figure("appointments", savvycal) == str(expected["appointments"]) == "3"
    assert figure("host_url_live", savvycal) == str(expected["live"]) == "2"
    assert figure("meetings_ahead", savvycal) == "2"
    assert figure("refresh_pending", savvycal) == "n/a"
    assert figure("dead_letters", savvycal) == str(expected["letters"]) == "1"
    assert figure("run_outcome", savvycal) == expected["outcome"] == "partial"
    assert figure("host_url_expired", "zoom/default") == "1"
    assert figure("refresh_pending", "zoom/default") == "1"
    page = browser.page_source
    assert "HOST-SECRET" not in page and READ_TOKEN not in page

    # A phone: 412 CSS px wide (Pixel 7), the whole page tall for the screenshot.
    def phone(height: int) -> None:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 412, "height": height, "deviceScaleFactor": 2, "mobile": True})

    phone(915)
    inner, scroll = browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]")
    assert scroll <= inner == 412, "the page scrolls sideways on a phone"
    phone(int(browser.execute_script("return document.documentElement.scrollHeight")))
    shot = tmp_path / "status.png"
    assert browser.save_screenshot(str(shot))
    if os.environ.get("MEETSYNC_UPDATE_SCREENSHOT"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "status.png")

    logged = capsys.readouterr()
    assert READ_TOKEN not in logged.out + logged.err
    assert WRONG_TOKEN not in logged.out + logged.err
    with capsys.disabled():
        print(f"\nstatus page screenshot: {shot}")
