"""Consularia's settings load from the environment and the config file, defaults filled in."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetsync.config import load_settings
from meetsync.providers import providers
from meetsync.providers.consularia import PROVIDER, ConsulariaClient
from meetsync.providers.keys import PROVIDER_KEYS
from meetsync.settings import SettingsError


def test_single_account_variables_make_the_default_account() -> None:
    settings = load_settings({"CONSULARIA_API_TOKEN": "tok",
                              "CONSULARIA_POLL_INTERVAL_SECONDS": "60"}, PROVIDER_KEYS)
    account = settings.account("consularia")
    assert account is not None
    assert PROVIDER.poll_interval(account) == 60
    assert account.text("api_url") == "https://api.consularia.dev/v1"
    api = PROVIDER.api(account, PROVIDER.budget(account))
    assert isinstance(api, ConsulariaClient)
    assert (api.rotation, api.poll_window.days, api.budget.per_minute) == (25, 30, 60)
    assert providers()["consularia"] is PROVIDER


def test_file_accounts_and_bad_values(tmp_path: Path) -> None:
    file = tmp_path / "meetsync.toml"
    file.write_text('[providers.consularia.accounts.eu]\napi_token = "t"\n'
                    'rotation_per_sweep = 0\napi_url = "https://eu.example/v1/"\n')
    settings = load_settings({"MEETSYNC_CONFIG": str(file)}, PROVIDER_KEYS)
    account = settings.account("consularia", "eu")
    assert account is not None and account.number("rotation_per_sweep") == 0
    assert account.text("api_url") == "https://eu.example/v1"
    with pytest.raises(SettingsError) as caught:
        load_settings({"CONSULARIA_API_TOKEN": "secret-value",
                       "CONSULARIA_POLL_INTERVAL_SECONDS": "soon"}, PROVIDER_KEYS)
    assert "CONSULARIA_POLL_INTERVAL_SECONDS" in str(caught.value)
    assert "secret-value" not in str(caught.value)
