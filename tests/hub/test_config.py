from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_config
from hub.errors import ConfigError


def test_defaults_are_documented_values() -> None:
    cfg = load_config(env={})
    assert cfg.kafka.bootstrap == "127.0.0.1:39092"
    assert cfg.kafka.idempotent is False
    assert cfg.feed.symbols == ("BTC-USD", "ETH-USD", "SOL-USD")


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[kafka]\nbootstrap = "a:1"\npartitions = 3\n[feed]\nsymbols = ["X-Y"]\n')
    env = {"HUB_KAFKA__BOOTSTRAP": "b:2", "HUB_FEED__RATE": "5.5", "HUB_KAFKA__IDEMPOTENT": "true"}
    cfg = load_config(path, env, {"kafka": {"partitions": 4}})
    assert cfg.kafka.bootstrap == "b:2"
    assert cfg.kafka.partitions == 4
    assert cfg.kafka.idempotent is True
    assert cfg.feed.rate == 5.5
    assert cfg.feed.symbols == ("X-Y",)


def test_unknown_key_rejected_with_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[kafka]\nbootstrp = "a:1"\n')
    with pytest.raises(
        ConfigError, match=r"unknown setting 'kafka.bootstrp' \(did you mean 'bootstrap'\?\)"
    ):
        load_config(path, {})


def test_unknown_section_and_env_typo_rejected() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'kafak'"):
        load_config(env={"HUB_KAFAK__BOOTSTRAP": "x"})
    with pytest.raises(ConfigError, match=r"unknown setting 'feed\.sed'"):
        load_config(env={"HUB_FEED__SED": "3"})


def test_wrong_types_named() -> None:
    with pytest.raises(ConfigError, match=r"feed\.seed: expected an integer, got 'abc'"):
        load_config(env={"HUB_FEED__SEED": "abc"})
    with pytest.raises(ConfigError, match=r"kafka\.idempotent: expected true or false"):
        load_config(env={"HUB_KAFKA__IDEMPOTENT": "maybe"})


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config(bad, {})


def test_config_is_frozen() -> None:
    cfg = load_config(env={})
    with pytest.raises(AttributeError):
        cfg.kafka.bootstrap = "x"  # type: ignore[misc]
