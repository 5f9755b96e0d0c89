"""Operating meetsync on a real PostgreSQL and with wrong settings: no password in any output
or file, one line and exit 4 when the mirror's database is down, exit 3 for a ``MEETSYNC_DB``
that is neither a path nor a supported URL (and nothing created), incomplete Zoom credentials
refused, and ``serve`` warning at start-up about a Redis that does not answer."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from meetsync.dev.pg_server import PostgresServer
from meetsync.dev.redis_server import free_port
from tests.cli.conftest import Run, clean_env

PASSWORD = "pg-pa55word-planted"
_roles = itertools.count()


def files_under(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*")}


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert "Traceback" not in text


@pytest.fixture(params=["user part", "parameter"])
def pg_secret_url(pg_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A database owned by a role with a password, and the URL that carries it: in the URL's
    user part (``role:PASSWORD@``) or as libpq's ``?password=`` parameter."""
    role = f"meetsync_owner_{next(_roles)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE {role} OWNER {role}")
    if request.param == "parameter":
        return f"postgresql://{role}@127.0.0.1:{pg_server.port}/{role}?password={PASSWORD}"
    return f"postgresql://{role}:{PASSWORD}@127.0.0.1:{pg_server.port}/{role}"


def test_migrate_and_the_reading_commands_never_print_the_password(
    meetsync: Run, pg_secret_url: str
) -> None:
    check = meetsync("migrate", "--check", "--json", MEETSYNC_DB=pg_secret_url)
    assert check.returncode == 1, check.stderr  # a new database: every migration pending
    applied = meetsync("migrate", "--json", MEETSYNC_DB=pg_secret_url)
    assert applied.returncode == 0, applied.stderr
    shown = json.loads(applied.stdout)
    assert shown["applied"] and "***" in shown["path"]
    assert json.loads(check.stdout)["path"] == shown["path"]
    runs = [check, applied]
    for args in (("migrate",), ("migrate", "--check"), ("changes",), ("config", "check"),
                 ("config", "check", "--json"), ("show", "appointment", "appt_x")):
        done = meetsync(*args, MEETSYNC_DB=pg_secret_url)
        assert done.returncode in (0, 1), (args, done.stderr)
        runs.append(done)
    assert_no_password(*(f"{done.stdout}{done.stderr}" for done in runs))


@pytest.mark.parametrize("args", [
    ("migrate", "--check"), ("migrate",), ("show", "meeting", "amtg_x"), ("changes",),
])
def test_an_unreachable_postgresql_is_one_line_and_exit_4(meetsync: Run, args: tuple[str, ...]
                                                         ) -> None:
    url = f"postgresql://someone:{PASSWORD}@127.0.0.1:{free_port()}/mirror"
    done = meetsync(*args, MEETSYNC_DB=url)
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("meetsync: the mirror is unavailable: PostgreSQL unreachable")
    assert_no_password(done.stderr)


def test_a_password_libpq_quotes_back_is_masked(meetsync: Run) -> None:
    """A malformed percent-escape in the password: libpq's own message repeats it."""
    url = f"postgresql://someone:{PASSWORD}%zz@127.0.0.1:{free_port()}/mirror"
    done = meetsync("changes", MEETSYNC_DB=url)
    assert done.returncode == 4 and len(done.stderr.splitlines()) == 1, done.stderr
    assert_no_password(done.stderr)


@pytest.mark.parametrize(("db", "command"), [
    (f"mysql://u:{PASSWORD}@db.example/mirror", ("config", "check")),
    (f"mysql://u:{PASSWORD}@db.example/mirror", ("migrate",)),
    ("redis://127.0.0.1/0", ("changes",)),
    ("sqlite://", ("migrate",)),
    ("sqlite:///", ("config", "check")),
    ("file:///tmp/x.db", ("migrate",)),
])
def test_an_unsupported_database_url_is_refused_and_creates_nothing(
    meetsync: Run, tmp_path: Path, db: str, command: tuple[str, ...]
) -> None:
    before = files_under(tmp_path)
    done = meetsync(*command, MEETSYNC_DB=db)
    assert done.returncode == 3, done.stdout
    assert done.stderr == ("meetsync: MEETSYNC_DB must be a file path, sqlite:///PATH or a "
                           "postgresql:// URL\n")
    assert files_under(tmp_path) == before
    assert_no_password(done.stdout)


def test_the_database_url_in_the_config_file_is_checked_too(meetsync: Run, tmp_path: Path
                                                           ) -> None:
    (tmp_path / "meetsync.toml").write_text(f'db = "mysql://u:{PASSWORD}@h/db"\n')
    done = meetsync("config", "check", MEETSYNC_CONFIG="meetsync.toml")
    assert done.returncode == 3
    assert done.stderr.startswith("meetsync: ") and "db must be a file path" in done.stderr
    assert_no_password(done.stderr)


def test_sqlite_urls_name_the_file_they_say(meetsync: Run, tmp_path: Path) -> None:
    relative = meetsync("migrate", MEETSYNC_DB="sqlite:///sub.db")
    assert relative.returncode == 0, relative.stderr
    absolute = tmp_path / "elsewhere" / "abs.db"
    absolute.parent.mkdir()
    done = meetsync("migrate", MEETSYNC_DB=f"sqlite:///{absolute}")  # sqlite:////abs/path
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "sub.db").is_file() and absolute.is_file()
    assert not any("sqlite:" in str(path) for path in files_under(tmp_path))
    shown = json.loads(meetsync("config", "check", "--json", MEETSYNC_DB="sqlite:///sub.db")
                       .stdout)
    assert shown["db"] == str(tmp_path / "sub.db")


def test_zoom_credentials_that_work_only_together_are_refused_alone(meetsync: Run,
                                                                    tmp_path: Path) -> None:
    alone = meetsync("config", "check", ZOOM_ACCOUNT_ID="acct", ZOOM_WEBHOOK_SECRET_TOKEN="t")
    assert alone.returncode == 3
    assert alone.stderr == ("meetsync: ZOOM_ACCOUNT_ID is set but ZOOM_CLIENT_ID and "
                            "ZOOM_CLIENT_SECRET are not: they work only together\n")
    (tmp_path / "meetsync.toml").write_text(
        '[providers.zoom.accounts.east]\nwebhook_secret_token = "t"\nclient_id = "c"\n'
        'client_secret = "s3cret-value"\n')
    in_file = meetsync("config", "check", MEETSYNC_CONFIG="meetsync.toml")
    assert in_file.returncode == 3
    assert "providers.zoom.accounts.east client_id is set but account_id is not" in in_file.stderr
    assert "s3cret-value" not in in_file.stderr
    complete = meetsync("config", "check", ZOOM_ACCOUNT_ID="acct", ZOOM_CLIENT_ID="c",
                        ZOOM_CLIENT_SECRET="s")
    assert complete.returncode == 0, complete.stderr


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meetsync.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            env=clean_env(LOG_LEVEL="INFO", REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:"
                          f"{free_port()}/0", MEETSYNC_READ_TOKEN="read-token-0123456789",
                          SAVVYCAL_WEBHOOK_SECRET="hook-secret"))
    try:
        yield proc, f"http://127.0.0.1:{port}", log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_serve_warns_at_start_up_when_redis_does_not_answer(
    serving: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    proc, url, log = serving
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 503 and "redis" in ready.text
    text = log.read_text()
    assert "redis_unreachable_at_start" in text and "REDIS_URL" in text
    assert_no_password(text)
