from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import HubConfig, load_config
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


def test_other_hub_variables_are_not_settings() -> None:
    """HUB_TOKEN and the tools' variables share the prefix; the loader leaves them alone."""
    tools = {
        "HUB_TOKEN": "key-1",
        "HUB_KAFKA_PORT": "1",
        "HUB_PG_PORT": "2",
        "HUB_SERVICES_DIR": "/tmp/x",
        "HUB_LOAD_TOKEN": "k",
        "HUB_FUZZ_EXAMPLES": "5",
        "HUB_TEST_KAFKA": "h:1",
    }
    cfg = load_config(env={**tools, "HUB_LOG_LEVEL": "debug", "HUB_SHUTDOWN_TIMEOUT_S": "3"})
    assert cfg == HubConfig(log_level="debug", shutdown_timeout_s=3.0)


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("HUB_FANOUT_PORT", "HUB_FANOUT__PORT"),
        ("HUB_FEED_SEED", "HUB_FEED__SEED"),
        ("HUB_FEED_SED", "HUB_FEED__SEED"),
        ("HUB_LOG_LEVL", "HUB_LOG_LEVEL"),
    ],
)
def test_near_misses_of_a_setting_name_are_refused(name: str, meant: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={name: "1"})
    assert str(caught.value) == f"unknown setting {name} (did you mean {meant}?)"


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
