"""The hub command: clear one-line errors for missing services and bad config."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from app.cli import _overrides, build_parser
from tests.conftest import ROOT

HUB = [sys.executable, "-m", "app.cli"]


def run_hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUB, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_help_lists_subcommands() -> None:
    out = run_hub("--help")
    assert out.returncode == 0
    for command in ("demo", "feed", "fanout", "recorder", "db", "services", "config"):
        assert command in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["feed", "--redis", "redis://127.0.0.1:1/0"],
            "hub: error: Redis unreachable at redis://127.0.0.1:1/0: ",
        ),
        (
            ["fanout", "--redis", "redis://127.0.0.1:1/0"],
            "hub: error: Redis unreachable at redis://127.0.0.1:1/0: ",
        ),
        (
            ["recorder", "--kafka", "127.0.0.1:1"],
            "hub: error: Kafka unreachable at 127.0.0.1:1: connection refused",
        ),
        (
            ["db", "migrate", "--postgres", "postgresql://u:secret@127.0.0.1:1/hub"],
            "hub: error: PostgreSQL unreachable at postgresql://u:***@127.0.0.1:1/hub: ",
        ),
    ],
)
def test_unreachable_service_is_one_line_naming_service_and_address(
    args: list[str], message: str
) -> None:
    out = run_hub(*args)
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(message)
    assert "secret" not in out.stderr
    assert "Traceback" not in out.stderr


def test_incomplete_venue_credentials_named_before_any_connection() -> None:
    out = run_hub(
        "feed",
        "--source",
        "coinbase-l3",
        "--symbols",
        "BTC-USD",
        "--kafka",
        "127.0.0.1:1",
        env={"COINBASE_API_KEY": "k"},
    )
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "hub: error: Coinbase credentials incomplete: "
        "COINBASE_API_SECRET, COINBASE_API_PASSPHRASE not set"
    )


def test_unknown_config_keys_rejected_at_start(tmp_path: object) -> None:
    out = run_hub("feed", env={"HUB_FEED__SEDD": "1"})
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == "hub: config error: unknown setting 'feed.sedd' (did you mean 'seed'?)"
    )


def test_other_hub_variables_pass_but_a_misspelt_setting_is_named() -> None:
    out = run_hub("config", env={"HUB_TOKEN": "x", "HUB_KAFKA_PORT": "1"})
    assert out.returncode == 0, out.stderr
    assert '"port": 8765' in out.stdout
    out = run_hub("config", env={"HUB_TOKEN": "x", "HUB_FANOUT__PROT": "9000"})
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == "hub: config error: unknown setting 'fanout.prot' (did you mean 'port'?)"
    )


def test_config_prints_effective_settings() -> None:
    out = run_hub("config", env={"HUB_KAFKA__PARTITIONS": "3"})
    assert out.returncode == 0
    assert '"partitions": 3' in out.stdout


@pytest.mark.services
def test_sigterm_while_start_up_waits_for_a_silent_broker_exits_0(
    services: dict[str, str],
) -> None:
    """SIGTERM before Kafka answers (a broker that accepts and never replies) stops the
    feed at once, cleanly, instead of after the start-up timeout or not at all."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(30)
        port = silent.getsockname()[1]
        proc = subprocess.Popen(
            [*HUB, "feed", "--kafka", f"127.0.0.1:{port}", "--redis", services["redis"]],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HUB_SHUTDOWN_TIMEOUT_S": "5"},
        )
        conn, _ = silent.accept()  # the feed now waits for the broker's answer
        with conn:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert '"msg":"stopped by signal"' in err
    assert "forced exit" not in err


def test_fanout_database_flags_set_the_node_history() -> None:
    args = build_parser().parse_args(
        ["fanout", "--database", "--postgres", "postgresql://u@127.0.0.1:1/hub"]
    )
    assert _overrides(args) == {
        "postgres": {"dsn": "postgresql://u@127.0.0.1:1/hub"},
        "fanout": {"database": True},
    }
    assert "fanout" not in _overrides(build_parser().parse_args(["fanout"]))
