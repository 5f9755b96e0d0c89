"""Each credential dies at its own expiry (the provider package's word), not at a rule of the
store's; each appointment records the account it came through; a mirror from release 0.1.0
upgrades to both, keeping the end + 24 h that release assumed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from meetsync.events import Event, Meeting, iso_utc
from meetsync.store import Store, open_store
from meetsync.store.migrations import SQLITE as migrations
from tests.sql import query as sql_query

FIXTURE = Path(__file__).parents[1] / "data" / "mirror-0.1.0.sqlite3"
NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
PAST, SOON, LATER = iso_utc(NOW - timedelta(hours=1)), iso_utc(NOW + timedelta(hours=2)), \
    iso_utc(NOW + timedelta(days=1))


def meeting(mid: str, host_expires: str | None, password_expires: str | None) -> Meeting:
    return Meeting(id=mid, status="created", join_url=f"https://j/{mid}",
                   host_url=f"https://h/{mid}", password=f"pw-{mid}",
                   host_url_expires_at=host_expires, password_expires_at=password_expires)


def event(eid: str, at: int, m: Meeting | None, *, account: str = "default",
          appt: str = "appt_1", end: str = "2030-06-01T13:00:00Z") -> Event:
    return Event(id=eid, provider="zoomish", type="appointment.updated", occurred_at=at,
                 appointment_id=appt, appointment_status="scheduled",
                 start_at="2030-06-01T12:00:00Z", end_at=end, meeting=m, account=account)


def raw(path: Path | str, sql: str) -> list[Any]:
    return sql_query(path, sql)


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """The mirror at a fixed "now" (NOW)."""
    with open_store(db_path, clock=lambda: NOW) as store:
        yield store


def test_a_credential_past_its_expiry_is_not_written_while_the_other_is(
    store: Store, db_path: Path
) -> None:
    store.apply([event("evt_1", 10, meeting("amtg_a", PAST, LATER))])
    assert raw(db_path, "SELECT host_url, password, host_url_expires_at, password_expires_at"
                        " FROM meetings") == [(None, "pw-amtg_a", PAST, LATER)]
    served = store.current_meeting("appt_1", provider="zoomish")
    assert served is not None and (served["host_url"], served["password"]) == (None, "pw-amtg_a")
    assert (served["host_url_expires_at"], served["password_expires_at"]) == (PAST, LATER)


def test_no_expiry_means_the_provider_gives_none(store: Store, db_path: Path) -> None:
    # Ended long ago: the store no longer assumes end + 24 h of its own.
    store.apply([event("evt_1", 10, meeting("amtg_a", None, None), end="2000-01-01T00:00:00Z")])
    assert store.purge_expired_credentials() == 0
    served = store.current_meeting("appt_1", provider="zoomish",
                                   now=datetime(2999, 1, 1, tzinfo=UTC))
    assert served is not None and (served["host_url"], served["password"]) == (
        "https://h/amtg_a", "pw-amtg_a")
    assert raw(db_path, "SELECT host_url, password FROM live_meetings") == [
        ("https://h/amtg_a", "pw-amtg_a")]


def test_the_expiry_follows_the_winning_snapshot(store: Store, db_path: Path) -> None:
    store.apply([event("evt_2", 20, meeting("amtg_a", SOON, LATER))])
    store.apply([event("evt_1", 10, meeting("amtg_a", LATER, LATER))])  # stale
    assert raw(db_path, "SELECT host_url_expires_at FROM meetings") == [(SOON,)]
    store.apply([event("evt_3", 30, meeting("amtg_a", LATER, PAST))])  # a refetch
    assert raw(db_path, "SELECT host_url, password, host_url_expires_at FROM meetings") == [
        ("https://h/amtg_a", None, LATER)]


def test_the_purge_clears_each_credential_at_its_own_expiry(
    store: Store, db_path: Path
) -> None:
    store.apply([event("evt_1", 10, meeting("amtg_a", SOON, LATER)),
                 event("evt_2", 10, meeting("amtg_b", LATER, None), appt="appt_2")])
    assert store.purge_expired_credentials(NOW) == 0
    in_three_hours = NOW + timedelta(hours=3)
    assert store.purge_expired_credentials(in_three_hours) == 1
    assert store.purge_expired_credentials(in_three_hours) == 0
    assert raw(db_path, "SELECT id, host_url, password FROM meetings ORDER BY id") == [
        ("amtg_a", None, "pw-amtg_a"), ("amtg_b", "https://h/amtg_b", "pw-amtg_b")]
    assert store.purge_expired_credentials(NOW + timedelta(days=2)) == 2
    assert raw(db_path, "SELECT id, host_url, password FROM meetings ORDER BY id") == [
        ("amtg_a", None, None), ("amtg_b", None, "pw-amtg_b")]


def test_the_account_is_recorded_and_stays_the_first_one(
    store: Store, db_path: Path
) -> None:
    # An appointment belongs to the account it was first received under (docs/configuration.md,
    # "Precedence and rules"): a newer snapshot from another account does not move it.
    store.apply([event("evt_1", 10, None, account="acme")])
    assert store.appointment("appt_1", provider="zoomish")["account"] == "acme"  # type: ignore[index]
    store.apply([event("evt_0", 5, None, account="stale")])
    store.apply([event("evt_2", 20, None, account="globex")])
    assert raw(db_path, "SELECT account FROM appointments") == [("acme",)]
    assert raw(db_path, "SELECT account FROM live_meetings") == []
    store.apply([event("evt_3", 30, meeting("amtg_a", None, None), account="acme")])
    assert raw(db_path, "SELECT account FROM live_meetings") == [("acme",)]


def test_appointments_ending_after_filters_by_account_when_given(store: Store) -> None:
    store.apply([event("evt_1", 10, None, account="acme"),
                 event("evt_2", 10, None, account="globex", appt="appt_2")])
    ending = store.appointments_ending_after("2030-01-01T00:00:00Z", provider="zoomish")
    assert sorted(ending) == ["appt_1", "appt_2"]
    assert store.appointments_ending_after(
        "2030-01-01T00:00:00Z", provider="zoomish", account="globex") == ["appt_2"]


# What every release before m005 assumed: a credential lives on the current meeting of an
# appointment neither canceled nor deleted until 24 h after it ends.
_OLD_LIVE = """(m.replaced_by IS NULL AND a.meeting_id IS m.id AND a.status IS NOT 'canceled'
    AND a.status IS NOT 'deleted' AND (a.end_at IS NULL OR a.end_at > :cutoff))"""


def test_a_mirror_from_release_0_1_keeps_end_plus_24h(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    shutil.copyfile(FIXTURE, path)
    with open_store(path) as store:  # migrates
        applied = [m.name for m in migrations.applied(Database(store.conn))]
        assert "m005_account_and_credential_expiry" in applied
        conn = store.conn
        assert conn.execute("SELECT DISTINCT account FROM appointments").fetchall() == [
            ("default",)]
        assert store.appointment("appt_XxiXpU16hbu1")["account"] == "default"  # type: ignore[index]
        expiries = conn.execute(
            "SELECT m.host_url_expires_at, m.password_expires_at, a.end_at FROM meetings m"
            " JOIN appointments a ON a.provider = m.provider AND a.id = m.appointment_id"
        ).fetchall()
        assert len(expiries) == 23
        for host_expires, password_expires, end_at in expiries:
            end = datetime.fromisoformat(end_at)
            assert host_expires == password_expires == iso_utc(end + timedelta(hours=24))

        # The view, at SQLite's clock, shows what the old rule showed.
        shown = conn.execute(
            f"""SELECT v.id, v.host_url, v.password, v.account,
                       CASE WHEN {_OLD_LIVE} THEN m.host_url END,
                       CASE WHEN {_OLD_LIVE} THEN m.password END, a.account
                FROM live_meetings v JOIN meetings m ON m.provider = v.provider AND m.id = v.id
                LEFT JOIN appointments a
                    ON a.provider = m.provider AND a.id = m.appointment_id""",  # noqa: S608
            {"cutoff": iso_utc(datetime.now(UTC) - timedelta(hours=24))},
        ).fetchall()
        assert [row[1:4] for row in shown] == [row[4:] for row in shown]

        # Reads and the purge, at a moment some of the fixture's credentials are dead.
        now = datetime(2026, 12, 3, tzinfo=UTC)
        cutoff = {"cutoff": iso_utc(now - timedelta(hours=24))}
        expected = dict(conn.execute(
            f"SELECT a.id, CASE WHEN {_OLD_LIVE} THEN m.host_url END FROM appointments a"  # noqa: S608
            " JOIN meetings m ON m.provider = a.provider AND m.id = a.meeting_id", cutoff
        ).fetchall())
        assert any(expected.values()) and not all(expected.values())
        assert {appointment_id: store.current_meeting(appointment_id, now=now)["host_url"]  # type: ignore[index]
                for appointment_id in expected} == expected
        dying = {row[0] for row in conn.execute(
            "SELECT m.id FROM meetings m JOIN appointments a ON a.provider = m.provider"
            " AND a.id = m.appointment_id WHERE m.host_url IS NOT NULL AND a.end_at <= :cutoff",
            cutoff)}
        assert 0 < len(dying) < 23
        assert store.purge_expired_credentials(now) == len(dying)
        assert {row[0] for row in conn.execute(
            "SELECT id FROM meetings WHERE host_url IS NULL AND password IS NULL")} >= dying
        assert store.purge_expired_credentials(now) == 0
