"""The benchmark runs (small sizes) and cross-checks every contender's book: it cannot rot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_bench_core_quick_prints_the_table() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_core", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("CPU: ")
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    names = " ".join(r.split(" | ")[0] for r in rows)
    for expected in (
        "order-book (C ext)",
        "sortedcontainers",
        "ours, batch",
        "ITCH bytes",
        "matching, mixed flow",
        "per-order latency",
        "L3 book memory",
    ):
        assert expected in names


def test_bench_feeds_replays_agree_with_the_baseline() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_feeds", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]  # the bench asserts equal summaries
    for venue in ("binance-spot", "coinbase-advanced-trade", "kraken-v1-book10"):
        assert f"| {venue} |" in out.stdout
    assert "simulated exchange" in out.stdout


def test_bench_orders_runs_both_journal_modes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_orders", "--rates", "300", "--seconds", "1.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| in-process: risk + matching + reports, no I/O",
        "| WebSocket round trip at 300/s, journal without fsync",
        "| WebSocket round trip at 300/s, journal fdatasync'd",
    ]
    for row in rows[1:]:
        sent = float(row.split(" | ")[1].replace(",", ""))
        assert 250 <= sent <= 350  # the pacing held the rate


def test_bench_fanout_delivers_what_the_feed_offers() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_fanout", "--quick", "--seconds", "1.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| 20 ")]
    assert [r[3] for r in rows] == ["baseline: a frame per update", "hub FanoutNode"]
    for row in rows:
        # 20 clients x 100 updates/s each: every offered update arrives (some book updates
        # are trades in the count; the generator's pacing allows a few percent).
        assert 1800 <= float(row[4].replace(",", "")) <= 2200, row


@pytest.mark.services
def test_bench_queries_answers_equal_from_bars_and_trades(services: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_queries", "--trades", "100000", "--runs", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]  # the bench asserts both give the same rows
    assert "100,000 trades stored" in out.stdout
    assert "| from the stored bars |" in out.stdout
