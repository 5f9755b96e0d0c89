"""Operating subscribers: ``meetsync subscribers list | test | enable | replay |
dead-letters`` as a user runs them, and the status page's figures."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import orjson
import pytest

from meetsync.cli import main
from meetsync.settings import Subscriber
from meetsync.simulator import serve_in_background
from meetsync.store import open_store
from meetsync.store import subscribers as cursors
from meetsync.webhooks import create_app
from tests.cli.conftest import clean_env
from tests.helpers.savvycal import savvycal_settings
from tests.subscribers.conftest import SECRET, event, write
from tests.subscribers.receiver import Fault, Receiver

READ_TOKEN = "subscribers-read-token"
URL_TOKEN = "planted-url-token-0123"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def meetsync(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             tmp_path: Path) -> Callable[..., Ran]:
    """The command in this process (a subprocess costs seconds a run on a busy machine),
    with a clean environment of its own."""

    def run(*args: str, **env: str) -> Ran:
        with monkeypatch.context() as patch:
            for name in list(os.environ):
                patch.delenv(name)
            for name, value in {**clean_env(**env), "MEETSYNC_CALLER_DIR": str(tmp_path)}.items():
                patch.setenv(name, value)
            capsys.readouterr()
            code = main(list(args))
            out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def test_list_test_enable_replay_and_dead_letters(
    tmp_path: Path, meetsync: Callable[..., Ran],
) -> None:
    db = tmp_path / "mirror.db"
    write(db, event(1, 1), event(2, 2))
    gone = [True]
    receiver = Receiver((SECRET,), decide=lambda _id, _n: Fault("status", 410) if gone[0]
                        else Fault()).start()
    try:
        with open_store(db) as store:
            cursors.ensure(store, ["default"])
            assert cursors.advance(store, "default", 0, 3, sent=True)
            cursors.disable(store, "default", "410 Gone", "digest")
        env = {"MEETSYNC_DB": str(db), "MEETSYNC_SUBSCRIBER_URL": f"{receiver.url}?t={URL_TOKEN}",
               "MEETSYNC_SUBSCRIBER_SECRET": SECRET}

        listed = meetsync("subscribers", "list", **env)
        assert listed.returncode == 0, listed.stderr
        (entry,) = orjson.loads(listed.stdout)
        assert entry["name"] == "default" and entry["credentials"] is True
        assert entry["state"]["seq"] == 3 and entry["state"]["disabled_reason"] == "410 Gone"
        assert entry["state"]["lag_seq"] == len(store_changes(db)) - 3
        assert URL_TOKEN not in listed.stdout and SECRET not in listed.stdout

        failed = meetsync("subscribers", "test", "default", **env)
        assert failed.returncode == 1 and "HTTP 410" in failed.stderr
        assert URL_TOKEN not in failed.stderr
        gone[0] = False
        tested = meetsync("subscribers", "test", "default", **env)
        assert tested.returncode == 0, tested.stderr
        assert "re-enabled" in tested.stdout
        assert receiver.requests[-1].body["type"] == "meetsync.test"  # verified by the receiver
        assert receiver.unverified == 0

        with open_store(db) as store:
            cursors.disable(store, "default", "410 Gone", "digest")
        enabled = meetsync("subscribers", "enable", "default", **env)
        assert enabled.returncode == 0 and "re-enabled" in enabled.stdout

        replayed = meetsync("subscribers", "replay", "default", "--since", "1", **env)
        assert replayed.returncode == 0, replayed.stderr
        with open_store(db, readonly=True) as store:
            cursor = cursors.cursor(store, "default")
            assert cursor is not None and cursor["seq"] == 1 and cursor["disabled_at"] is None

        unknown = meetsync("subscribers", "replay", "nope", "--since", "1", **env)
        assert unknown.returncode != 0 and "no subscriber named 'nope'" in unknown.stderr

        with open_store(db) as store:
            assert cursors.give_up(store, "default", 1, 2, "msg_default_2", "HTTP 500")
        letters = meetsync("subscribers", "dead-letters", **env)
        assert [(d["seq"], d["webhook_id"]) for d in orjson.loads(letters.stdout)] == [
            (2, "msg_default_2")]
    finally:
        receiver.stop()


def store_changes(db: Path) -> list[object]:
    with open_store(db, readonly=True) as store:
        return store.changes_since(0, 10_000)


def test_the_status_page_shows_each_subscriber(tmp_path: Path, redis_server: object) -> None:
    db = tmp_path / "mirror.db"
    write(db, event(1, 1), event(2, 2))
    with open_store(db) as store:
        cursors.ensure(store, ["crm"])
        assert cursors.advance(store, "crm", 0, 2, sent=True)
        assert cursors.failed(store, "crm", 2, 0, "HTTP 503") is not None
    settings = replace(
        savvycal_settings(db_path=str(db), read_token=READ_TOKEN,
                          savvycal_webhook_secrets=("x",),
                          redis_url=redis_server.url),  # type: ignore[attr-defined]
        subscribers=(Subscriber("crm", f"https://crm.example/h?t={URL_TOKEN}", (SECRET,)),
                     Subscriber("new", "https://new.example/h", (SECRET,))))
    with serve_in_background(create_app(settings), lifespan=True) as url:
        page = httpx.get(f"{url}/status", headers={"authorization": f"Bearer {READ_TOKEN}"}).text
    crm = page[page.index("<td>crm</td>"):page.index("<td>new</td>")]
    figures = dict(re.findall(r'data-figure="(subscriber_\w+)"[^>]*>([^<]*)<', crm))
    assert figures["subscriber_sent"] == "1"
    assert figures["subscriber_failed"] == "1"
    assert figures["subscriber_lag_seq"] == str(len(store_changes(db)) - 2)
    assert figures["subscriber_state"].startswith("retrying (1: HTTP 503")
    assert "not started" in page  # "new": configured, no worker has delivered to it yet
    assert URL_TOKEN not in page and "https://crm.example/…" in page
