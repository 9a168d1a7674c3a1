"""The typed views of the settings model hold exactly its keys, with its types."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from runtime import config as runtime_config
from runtime.settings import SETTINGS, RuntimeSettings, SettingValues, StackSettings, parse_settings


def _fields(cls: type) -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def test_runtime_settings_are_the_runtime_keys_with_their_types() -> None:
    assert _fields(RuntimeSettings) == {s.key: s.kind for s in SETTINGS if s.runtime}


def test_setting_values_are_every_key_with_its_type() -> None:
    assert _fields(SettingValues) == {s.key: s.kind for s in SETTINGS}


def test_stack_settings_read_typed_and_by_key() -> None:
    settings = parse_settings("dev", {"maxActiveSessions": "250", "tracing": "false"})
    assert isinstance(settings, StackSettings)
    assert settings.maxActiveSessions == 250 and settings["maxActiveSessions"] == 250
    assert settings.tracing is False
    assert settings.values == {s.key: getattr(settings, s.key) for s in SETTINGS}
    with pytest.raises(KeyError):
        settings["stack"]  # not a setting
    with pytest.raises(AttributeError):
        getattr(settings, "maxActiveSesions")  # noqa: B009  # a typo is an error


def test_the_functions_read_typed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IP_HASH_KEY", "k" * 32)
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "42")
    runtime_config.config.cache_clear()
    try:
        cfg = runtime_config.config()
        assert cfg.maxListenersPerSession == 42
        assert isinstance(cfg, RuntimeSettings)
        with pytest.raises(AttributeError):
            getattr(cfg, "alarmEmail")  # noqa: B009  # infrastructure only
    finally:
        runtime_config.config.cache_clear()
