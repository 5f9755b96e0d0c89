"""The single-account environment variables: unchanged meaning, every bad one named at once,
relative paths resolved against the caller's directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetsync.cli._common import require
from meetsync.config import load_settings
from meetsync.providers.keys import PROVIDER_KEYS, settings_from_env
from meetsync.settings import SettingsError
from tests.helpers.savvycal import flat

SECRET = "s3cr3t-planted-value"


def test_todays_variables_build_the_default_savvycal_account(tmp_path: Path) -> None:
    settings = load_settings({
        "MEETSYNC_CALLER_DIR": str(tmp_path), "MEETSYNC_DB": "sub/m.db",
        "REDIS_URL": "redis://127.0.0.1:6379/0", "SAVVYCAL_WEBHOOK_SECRET": " a , b ,",
        "STANDARD_WEBHOOK_SECRET": "whsec_abc", "SAVVYCAL_API_URL": "http://sim:1/v1/",
        "SAVVYCAL_API_TOKEN": "tok", "SAVVYCAL_ACCOUNT_ID": "acct_1",
        "SAVVYCAL_API_REQUESTS_PER_MINUTE": "60", "MEETSYNC_READ_TOKEN": "read",
        "RECONCILE_INTERVAL_SECONDS": "30", "MEETSYNC_CLAIM_IDLE_MS": "100", "PORT": "8080",
        "LOG_LEVEL": "warning", "MEETSYNC_CLOCK_SKEW_SECONDS": "5",
    }, PROVIDER_KEYS)
    assert settings.db_path == str(tmp_path / "sub" / "m.db")
    assert (settings.port, settings.log_level, settings.claim_idle_ms) == (8080, "WARNING", 100)
    assert settings.reconcile_interval_seconds == 30 and settings.clock_skew_seconds == 5
    assert [a.key for a in settings.accounts] == [("savvycal", "default")]
    assert flat(settings).savvycal_webhook_secrets == ("a", "b")
    assert flat(settings).standard_webhook_secrets == ("whsec_abc",)
    assert flat(settings).savvycal_api_url == "http://sim:1/v1"
    one = flat(settings)
    assert (one.savvycal_api_token, one.savvycal_account_id) == ("tok", "acct_1")
    assert flat(settings).api_requests_per_minute == 60 and settings.read_token == "read"


def test_nothing_set_means_defaults_and_no_account(tmp_path: Path) -> None:
    settings = load_settings({"MEETSYNC_CALLER_DIR": str(tmp_path), "PORT": ""}, PROVIDER_KEYS)
    assert settings.accounts == () and settings.redis_url is None
    assert settings.db_path == str(tmp_path / "meetsync.db") and settings.port == 8000
    assert flat(settings).savvycal_api_url == "https://api.savvycal.app/v1"
    assert flat(settings).api_requests_per_minute == 300
    with pytest.raises(SettingsError, match=r"^SAVVYCAL_API_TOKEN must be set$"):
        require(settings, api_token=True)  # what reconcile/backfill/replay check first


def test_every_malformed_variable_is_named_at_once_without_its_value() -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env({
            "REDIS_URL": f"localhost:{SECRET}", "PORT": "abc", "LOG_LEVEL": "verbose",
            "MEETSYNC_CLAIM_IDLE_MS": "-1", "SAVVYCAL_API_URL": f"ftp://{SECRET}",
            "STANDARD_WEBHOOK_SECRET": SECRET, "SAVVYCAL_API_REQUESTS_PER_MINUTE": "1.5",
        })
    assert caught.value.problems == (
        "REDIS_URL must be a redis:// or rediss:// URL",
        "MEETSYNC_CLAIM_IDLE_MS must be a whole number of at least 1",
        "PORT must be a whole number from 1 to 65535",
        "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR",
        "STANDARD_WEBHOOK_SECRET must start with whsec_ (every secret in it)",
        "SAVVYCAL_API_URL must be an http:// or https:// URL",
        "SAVVYCAL_API_REQUESTS_PER_MINUTE must be a whole number of at least 1",
    )
    assert SECRET not in str(caught.value)


def test_the_queue_settings_default_to_one_stream_on_redis_url() -> None:
    """No MEETSYNC_QUEUE_URL: the stream shares arq's Redis; a cluster is asked for by scheme;
    a partition count outside 1-64 fails at start-up, named."""
    plain = settings_from_env({"REDIS_URL": "redis://r:6379/0"})
    assert (plain.queue_partitions, plain.queue_url) == (1, None)
    assert plain.require_queue() == "redis://r:6379/0"
    clustered = settings_from_env({
        "REDIS_URL": "redis://r:6379/0", "MEETSYNC_QUEUE_PARTITIONS": "8",
        "MEETSYNC_QUEUE_URL": f"rediss+cluster://:{SECRET}@c:7000"})
    assert clustered.queue_partitions == 8
    assert clustered.require_queue() == f"rediss+cluster://:{SECRET}@c:7000"
    assert SECRET not in repr(clustered)
    with pytest.raises(SettingsError) as caught:
        settings_from_env({"MEETSYNC_QUEUE_PARTITIONS": "0",
                           "MEETSYNC_QUEUE_URL": f"cluster://{SECRET}"})
    assert caught.value.problems == (
        "MEETSYNC_QUEUE_URL must be a redis:// or rediss:// or redis+cluster:// or "
        "rediss+cluster:// URL",
        "MEETSYNC_QUEUE_PARTITIONS must be a whole number from 1 to 64",
    )
    assert SECRET not in str(caught.value)
    with pytest.raises(SettingsError, match="MEETSYNC_QUEUE_PARTITIONS"):
        settings_from_env({"MEETSYNC_QUEUE_PARTITIONS": "65"})


def test_the_config_path_is_the_callers(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('port = 9001\n')
    settings = load_settings({"MEETSYNC_CALLER_DIR": str(tmp_path), "MEETSYNC_CONFIG": "c.toml"},
                             PROVIDER_KEYS)
    assert settings.port == 9001


def test_a_provider_that_signs_nothing_needs_no_webhook_secret_to_serve() -> None:
    """Avon's deliveries are only hints (no signing scheme is documented): an Avon account is
    enough for the receiver, while an account of a signing provider still needs its secret."""
    avon = settings_from_env({"AVON_API_URL": "https://demo.avonhealth.com"})
    require(avon, webhook_secret=True)
    with pytest.raises(SettingsError, match="a webhook secret must be set"):
        require(settings_from_env({"SAVVYCAL_API_TOKEN": "t"}), webhook_secret=True)


def test_a_poll_only_deployment_needs_no_webhook_secret_to_serve() -> None:
    """Consularia sends no webhooks: a Consularia-only deployment's receiver serves the read
    API alone; beside an account of a signing provider, that one's secret is still needed."""
    consularia = {"CONSULARIA_API_TOKEN": "t"}
    require(settings_from_env(consularia), webhook_secret=True)
    with pytest.raises(SettingsError, match="a webhook secret must be set"):
        require(settings_from_env({**consularia, "SAVVYCAL_API_TOKEN": "t"}),
                webhook_secret=True)
