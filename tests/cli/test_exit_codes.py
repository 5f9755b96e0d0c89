"""Bad settings, missing dependencies and bad knobs end in one-line messages and documented
exit codes, never a traceback or a secret."""

from __future__ import annotations

import pytest

from meetsync.dev.redis_server import free_port
from tests.cli.conftest import Run

SECRET = "s3cr3t-planted-value"


def assert_clean(done: object) -> None:
    out = f"{done.stdout}{done.stderr}"  # type: ignore[attr-defined]
    assert "Traceback" not in out and SECRET not in out


@pytest.mark.parametrize(("env", "message"), [
    ({"REDIS_URL": "localhost:6379"}, "meetsync: REDIS_URL must be a redis:// or rediss:// URL"),
    ({"PORT": "abc"}, "meetsync: PORT must be a whole number from 1 to 65535"),
    ({"LOG_LEVEL": "verbose"}, "meetsync: LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
    ({"MEETSYNC_CONFIG": "missing.toml"}, "meetsync: MEETSYNC_CONFIG: cannot read "),
])
def test_a_malformed_setting_exits_3_naming_it(
    meetsync: Run, env: dict[str, str], message: str
) -> None:
    done = meetsync("stats", **env)
    assert done.returncode == 3
    assert done.stderr.startswith(message) and done.stdout == ""
    assert_clean(done)


def test_help_and_version_work_whatever_the_settings(meetsync: Run) -> None:
    bad = {"PORT": "abc", "REDIS_URL": "localhost:6379", "LOG_LEVEL": "verbose"}
    done = meetsync("--help", **bad)
    assert done.returncode == 0 and "Exit codes:" in done.stdout
    for command in ("serve", "dev", "demo", "backup", "config"):
        assert meetsync(command, "--help", **bad).returncode == 0
    version = meetsync("--version")
    assert version.returncode == 0 and version.stdout.startswith("meetsync, version ")


def test_serve_names_everything_it_lacks_at_once(meetsync: Run) -> None:
    done = meetsync("serve", MEETSYNC_READ_TOKEN="", SAVVYCAL_API_TOKEN=SECRET)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        "meetsync: REDIS_URL must be set (or run `meetsync dev` beside this command)",
        "meetsync: MEETSYNC_READ_TOKEN must be set",
        "meetsync: a webhook secret must be set: SAVVYCAL_WEBHOOK_SECRET or "
        "STANDARD_WEBHOOK_SECRET or ZOOM_WEBHOOK_SECRET_TOKEN, or an account's in MEETSYNC_CONFIG",
    ]
    assert_clean(done)


def test_bad_values_from_the_environment_and_the_file_are_listed_together(meetsync: Run) -> None:
    done = meetsync("config", "check", PORT="0", STANDARD_WEBHOOK_SECRET=SECRET,
                    MEETSYNC_CONFIG="/dev/null/x.toml")
    assert done.returncode == 3 and len(done.stderr.splitlines()) == 3
    assert_clean(done)


def test_unavailable_dependencies_exit_4(meetsync: Run) -> None:
    unreachable = meetsync("stats", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert unreachable.returncode == 4
    assert unreachable.stderr == "meetsync: Redis at REDIS_URL does not answer (ConnectionError)\n"
    no_mirror = meetsync("show", "meeting", "amtg_x", MEETSYNC_DB="nothing.db")
    assert no_mirror.returncode == 4 and no_mirror.stderr.startswith("meetsync: no mirror at ")
    for done in (unreachable, no_mirror):
        assert_clean(done)


@pytest.mark.parametrize("args", [
    ("demo", "--drop", "10"), ("demo", "--duplicate", "-0.1"), ("demo", "--appointments", "0"),
    ("dead-letters", "replay"), ("show", "nothing", "x"), ("changes", "--since", "x"),
])
def test_bad_knobs_are_usage_errors(meetsync: Run, args: tuple[str, ...]) -> None:
    done = meetsync(*args)
    assert done.returncode == 2 and "Error:" in done.stderr
    assert_clean(done)


def test_config_check_prints_the_effective_settings_with_secrets_masked(meetsync: Run) -> None:
    done = meetsync("config", "check", "--json", SAVVYCAL_WEBHOOK_SECRET=f"{SECRET},{SECRET}2",
                    SAVVYCAL_API_TOKEN=SECRET, MEETSYNC_READ_TOKEN=SECRET, PORT="9000")
    assert done.returncode == 0, done.stderr
    assert '"port": 9000' in done.stdout and '"*** (2 secrets)"' in done.stdout
    assert_clean(done)
    human = meetsync("config", "check", SAVVYCAL_API_TOKEN=SECRET)
    assert "[providers.savvycal.accounts.default]" in human.stdout
    assert_clean(human)
