"""MEETSYNC_CONFIG: accounts per provider, env references, precedence, and errors that name the
key and its line (never a value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetsync.config import load_settings, masked
from meetsync.providers.keys import PROVIDER_KEYS
from meetsync.settings import Settings, SettingsError
from tests.helpers.savvycal import flat

SECRET = "s3cr3t-planted-value"


def load(tmp_path: Path, text: str, **env: str) -> Settings:
    path = tmp_path / "meetsync.toml"
    path.write_text(text)
    return load_settings({"MEETSYNC_CONFIG": str(path), "MEETSYNC_CALLER_DIR": str(tmp_path),
                          **env}, PROVIDER_KEYS)


def problems(tmp_path: Path, text: str, **env: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, text, **env)
    assert SECRET not in str(caught.value)
    return list(caught.value.problems)


def test_accounts_from_the_file_with_secrets_from_the_environment(tmp_path: Path) -> None:
    settings = load(tmp_path, f"""
db = "data/mirror.db"
port = 9000

[providers.savvycal.accounts.acme]
webhook_secret = ["s1", "s2"]
api_token = {{ env = "ACME_TOKEN" }}
requests_per_minute = 120

[providers.savvycal.accounts.globex]
standard_webhook_secret = "whsec_{'A' * 32}"
api_url = "http://127.0.0.1:9/v1/"
""", ACME_TOKEN="tok-acme")
    assert settings.db_path == str(tmp_path / "data" / "mirror.db")  # beside the file
    assert settings.port == 9000
    acme = settings.account("savvycal", "acme")
    assert acme is not None and acme.key == ("savvycal", "acme")
    assert acme.secrets("webhook_secret") == ("s1", "s2")
    assert acme.text("api_token") == "tok-acme"
    assert acme.number("requests_per_minute") == 120
    assert acme.text("api_url") == "https://api.savvycal.app/v1"  # the default
    globex = settings.account("savvycal", "globex")
    assert globex is not None and globex.text("api_url") == "http://127.0.0.1:9/v1"
    assert globex.number("requests_per_minute") == 300
    assert [a.name for a in settings.accounts_of("savvycal")] == ["acme", "globex"]
    assert settings.account("savvycal") is None  # no single-account variables set


def test_environment_beats_the_file_for_core_keys_and_adds_the_default_account(
    tmp_path: Path,
) -> None:
    settings = load(tmp_path, """
port = 9000
log_level = "debug"
[providers.savvycal.accounts.acme]
webhook_secret = "file-secret"
""", PORT="9100", SAVVYCAL_WEBHOOK_SECRET="a,b", SAVVYCAL_API_TOKEN="tok")
    assert settings.port == 9100 and settings.log_level == "DEBUG"
    default = settings.account("savvycal")
    assert default is not None and default.secrets("webhook_secret") == ("a", "b")
    assert {a.name for a in settings.accounts_of("savvycal")} == {"default", "acme"}
    # compatibility layer: every account's webhook secrets verify, the default's token calls
    assert flat(settings).savvycal_webhook_secrets == ("a", "b", "file-secret")
    assert flat(settings).savvycal_api_token == "tok"


def test_every_problem_at_once_with_file_lines(tmp_path: Path) -> None:
    found = problems(tmp_path, f"""
port = "eighty"
colour = "blue"

[providers.savvycal.accounts.acme]
api_token = {{ env = "NOT_SET_ANYWHERE" }}
requests_per_minute = 0
webhok_secret = "{SECRET}"
standard_webhook_secret = "{SECRET}"

[providers.zoomish.accounts.x]
[providers.savvycal.accounts.Bad_Name]
""", PORT="")
    file = tmp_path / "meetsync.toml"
    assert sorted(found) == sorted([
        f"{file}:2: port must be a whole number from 1 to 65535",
        f"{file}:3: colour is not a known setting",
        f"{file}:6: providers.savvycal.accounts.acme.api_token refers to NOT_SET_ANYWHERE, "
        "which is not set",
        f"{file}:7: providers.savvycal.accounts.acme.requests_per_minute must be a whole "
        "number of at least 1",
        f"{file}:8: providers.savvycal.accounts.acme.webhok_secret is not a known setting",
        f"{file}:9: providers.savvycal.accounts.acme.standard_webhook_secret must start with "
        "whsec_ (every secret in it)",
        f"{file}:11: providers.zoomish is not a known provider (avon, consularia, savvycal,"
        " zoom)",
        f"{file}:12: providers.savvycal.accounts.Bad_Name must be named like "
        "[a-z0-9][a-z0-9_-]*",
    ])


def test_a_default_account_in_both_places_is_an_error(tmp_path: Path) -> None:
    found = problems(tmp_path, '[providers.savvycal.accounts.default]\napi_token = "x"\n',
                     SAVVYCAL_API_TOKEN=SECRET)
    assert found == [f"{tmp_path / 'meetsync.toml'}:1: providers.savvycal.accounts.default is "
                     "also defined by the environment (its single-account variables)"]


def test_syntax_errors_and_missing_files_name_the_file(tmp_path: Path) -> None:
    found = problems(tmp_path, f'read_token = "{SECRET}"\nport = \n')
    assert found == [f"{tmp_path / 'meetsync.toml'}:2: not valid TOML: Invalid value"]
    with pytest.raises(SettingsError) as caught:
        load_settings({"MEETSYNC_CONFIG": "nowhere.toml", "MEETSYNC_CALLER_DIR": str(tmp_path)},
                      PROVIDER_KEYS)
    assert caught.value.problems == (
        f"MEETSYNC_CONFIG: cannot read {tmp_path / 'nowhere.toml'}: No such file or directory",)


def test_config_check_masks_every_secret(tmp_path: Path) -> None:
    settings = load(tmp_path, f"""
read_token = "{SECRET}"
redis_url = "redis://:{SECRET}@127.0.0.1:6379/0"
[providers.savvycal.accounts.acme]
webhook_secret = ["{SECRET}", "{SECRET}2"]
api_token = "{SECRET}"
""")
    shown = masked(settings, PROVIDER_KEYS)
    assert SECRET not in repr(shown) and SECRET not in repr(settings)
    assert shown["redis_url"] == "redis://:***@127.0.0.1:6379/0"
    assert shown["providers"] == {"savvycal": {"acme": {  # type: ignore[comparison-overlap]
        "webhook_secret": "*** (2 secrets)", "standard_webhook_secret": None,
        "api_url": "https://api.savvycal.app/v1", "api_token": "***", "account_id": None,
        "requests_per_minute": 300}}}
