"""What the status page says when something is wrong (over real HTTP, real Redis, SQLite and
PostgreSQL): an unreachable mirror is said, not shown as zeros; an account without API
credentials says its reconciler is off; self-test appointments are not counted; signature
refusals show per configured account, else in one fixed bucket per provider."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from meetsync import metrics
from meetsync.config import load_settings
from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.events import Event, Meeting, iso_utc, to_micros
from meetsync.providers.keys import PROVIDER_KEYS
from meetsync.providers.savvycal.simulator.signing import native_headers
from meetsync.providers.selftests import selftest_appointment_ids
from meetsync.settings import Settings
from meetsync.simulator.serve import serve_in_background
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.webhooks.operator import UNKNOWN_ACCOUNT

READ_TOKEN = "status-read-token-0123456789"
PASSWORD = "status-pg-pa55word"
AUTH = {"authorization": f"Bearer {READ_TOKEN}"}


def settings_for(tmp_path: Path, db: str, redis_url: str, config: str = "",
                 **env: str) -> Settings:
    path = tmp_path / "meetsync.toml"
    path.write_text(config)
    return load_settings({"MEETSYNC_DB": db, "REDIS_URL": redis_url,
                          "MEETSYNC_READ_TOKEN": READ_TOKEN, "MEETSYNC_CONFIG": str(path),
                          "MEETSYNC_CALLER_DIR": str(tmp_path), **env}, PROVIDER_KEYS)


def page(settings: Settings) -> str:
    with serve_in_background(create_app(settings), lifespan=True) as url:
        answer = httpx.get(f"{url}/status", headers=AUTH)
    assert answer.status_code == 200
    return answer.text


def figure(html: str, name: str, account: str | None = None) -> str:
    if account is not None:
        html = html.split(f'data-account="{account}"', 1)[1].split("</section>", 1)[0]
    found = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert found, name
    return found.group(1)


def test_an_unreachable_mirror_is_said_not_shown_as_zeros(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    db = f"postgresql://meetsync:{PASSWORD}@127.0.0.1:{free_port()}/mirror"
    html = page(settings_for(tmp_path, db, redis_server.url, SAVVYCAL_WEBHOOK_SECRET="s"))
    assert figure(html, "mirror_state").startswith("The mirror is unreachable")
    assert figure(html, "appointments", "savvycal/default") == "—"
    assert PASSWORD not in html


def event(appointment_id: str, provider: str, account: str = "default") -> Event:
    now = datetime.now(UTC)
    return Event(id=f"evt_{appointment_id}", provider=provider, account=account,
                 type="appointment.meeting.updated", occurred_at=to_micros(now),
                 appointment_id=appointment_id, appointment_status="scheduled",
                 start_at=iso_utc(now + timedelta(hours=1)),
                 end_at=iso_utc(now + timedelta(hours=2)),
                 meeting=Meeting(id=f"m_{appointment_id}", status="created",
                                 join_url=f"https://meet.example/{appointment_id}"))


def test_reconciler_off_and_self_test_appointments_left_out(
    tmp_path: Path, redis_server: RedisServer, db_path: Path | str
) -> None:
    selftests = selftest_appointment_ids()
    store = open_store(db_path)
    try:
        _, failed = store.apply([
            event("appt_real_1", "savvycal"), event(selftests["savvycal"], "savvycal"),
            event("81234567", "zoom"), event(selftests["zoom"], "zoom"),
        ])
        assert failed == []
    finally:
        store.close()
    settings = settings_for(tmp_path, str(db_path), redis_server.url,
                            SAVVYCAL_WEBHOOK_SECRET="s", ZOOM_WEBHOOK_SECRET_TOKEN="t",
                            ZOOM_ACCOUNT_ID="a", ZOOM_CLIENT_ID="c", ZOOM_CLIENT_SECRET="x")
    html = page(settings)
    assert figure(html, "appointments", "savvycal/default") == "1"
    assert figure(html, "appointments", "zoom/default") == "1"
    off = figure(html, "reconciler_off", "savvycal/default")
    assert off.startswith("Reconciler off: no API credentials (set SAVVYCAL_API_TOKEN")
    zoom_card = html.split('data-account="zoom/default"', 1)[1].split("</section>", 1)[0]
    assert "reconciler_off" not in zoom_card
    assert "The mirror" not in html


def _refused(provider: str, account: str) -> int:
    for family in metrics.DELIVERIES.collect():
        for sample in family.samples:
            labels = sample.labels
            if (sample.name.endswith("_total") and labels["provider"] == provider
                    and labels["account"] == account
                    and labels["outcome"] == "rejected_signature"):
                return int(sample.value)
    return 0


def test_signature_refusals_show_per_configured_account_else_one_bucket(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    acme, beta = f"acme{secrets.token_hex(3)}", f"beta{secrets.token_hex(3)}"
    config = "".join(f'[providers.savvycal.accounts.{name}]\nwebhook_secret = "{name}-secret"\n'
                     for name in (acme, beta))
    settings = settings_for(tmp_path, str(tmp_path / "mirror.db"), redis_server.url, config)
    open_store(settings.db_path).close()
    bucket_before = _refused("savvycal", UNKNOWN_ACCOUNT)
    body = b'{"type": "event.created", "payload": {}}'
    wrong = native_headers(body, "not-any-accounts-secret", "wh_1")
    attacker = "attacker-chosen-label-x9"
    with serve_in_background(create_app(settings), lifespan=True) as url:
        posts = [f"/webhooks/savvycal/{acme}", f"/webhooks/savvycal/{acme}",
                 f"/webhooks/savvycal/{attacker}", "/webhooks/savvycal"]
        for path in posts:
            assert httpx.post(f"{url}{path}", content=body, headers=wrong).status_code == 401
        html = httpx.get(f"{url}/status", headers=AUTH).text
        scraped = httpx.get(f"{url}/metrics").text
    rows = re.findall(r"<tr><td>savvycal</td><td>([^<]*)</td><td><span "
                      r'data-figure="signature_refusals">(\d+)</span>', html)
    assert (acme, "2") in rows
    assert ("unknown account", str(bucket_before + 2)) in rows
    assert beta not in {account for account, _ in rows}
    assert figure(html, "deliveries_refused", f"savvycal/{acme}") == "2"
    assert attacker not in html and attacker not in scraped
