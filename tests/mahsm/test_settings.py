from __future__ import annotations

import pytest

from mahsm.contracts.task import Capability
from mahsm.settings import SettingsError, load_settings


def test_defaults_use_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MAHSM_TEMPORAL_ADDRESS", "MAHSM_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.uses_embedded_temporal and settings.uses_embedded_postgres
    assert settings.api_host == "127.0.0.1" and settings.api_port == 8000
    assert settings.worker_capabilities == list(Capability)


def test_invalid_values_name_the_variable_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAHSM_API_PORT", "not-a-port")
    monkeypatch.setenv("MAHSM_DEFAULT_MODEL", "gpt4")
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert "MAHSM_API_PORT" in message and "MAHSM_DEFAULT_MODEL" in message
    assert "Fix the variable" in message


def test_api_keys_and_capabilities_parse_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAHSM_API_KEYS", "k1:alice, k2:bob")
    monkeypatch.setenv("MAHSM_WORKER_CAPABILITIES", "data_analysis,web_scraping")
    settings = load_settings(_env_file=None)
    assert settings.api_keys == {"k1": "alice", "k2": "bob"}
    assert settings.worker_capabilities == [Capability.DATA_ANALYSIS, Capability.WEB_SCRAPING]


def test_malformed_api_keys_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAHSM_API_KEYS", "justakey")
    with pytest.raises(SettingsError, match="MAHSM_API_KEYS"):
        load_settings(_env_file=None)


def test_a_capability_that_is_no_identifier_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAHSM_WORKER_CAPABILITIES", "data_analysis,Time Travel")
    with pytest.raises(SettingsError, match="MAHSM_WORKER_CAPABILITIES"):
        load_settings(_env_file=None)


def test_a_custom_capability_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Capabilities are any identifiers (docs/profiles.md), not only the six built-ins.
    monkeypatch.setenv("MAHSM_WORKER_CAPABILITIES", "time_travel")
    assert load_settings(_env_file=None).worker_capabilities == ["time_travel"]


def test_database_url_must_be_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAHSM_DATABASE_URL", "mysql://x")
    with pytest.raises(SettingsError, match="MAHSM_DATABASE_URL"):
        load_settings(_env_file=None)
