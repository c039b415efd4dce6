"""Each benchmark runs (small sizes) and cross-checks what it measures: none can rot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_bench(module: str, *args: str, timeout: float = 300) -> str:
    """Run ``python -m bench.<module> args``; its stdout, once it exited 0."""
    out = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_bench_core_quick_prints_the_table() -> None:
    stdout = run_bench("bench_core", "--quick")
    lines = stdout.splitlines()
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


def test_bench_feeds_quick_plays_the_peers_captures() -> None:
    # the bench asserts our books equal cryptofeed's and that no checksum failed
    stdout = run_bench("bench_feeds", "--quick")
    rows = {r.split(" | ")[0][2:]: r.split(" | ") for r in stdout.splitlines() if r[:2] == "| "}
    assert {"coinbase-advanced-trade", "binance-spot", "kraken-v1-book10"} <= set(rows)
    assert int(rows["kraken-v1-book10"][-1].rstrip(" |").replace(",", "")) == 979
    peer = next(line for line in stdout.splitlines() if line.startswith("peer: "))
    if "not installed" not in peer:  # cryptofeed is the bench extra, not a dev dependency
        assert rows["kraken-v1-book10"][5] == "all 1"
        assert rows["binance-spot"][5] == "all 4"
        # played through cryptofeed too, every book equal to ours (Phemex: once its spot
        # sizes are unscaled; Huobi spot: its sizes rounded as ours), OKX with checksums
        for name, books in (("huobi-coin-swap", "all 5"), ("okx-spot-futures-swap", "all 3")):
            assert rows[name][5] == books
        assert rows["phemex"][5] == rows["huobi-spot"][5] == "all 10 (*)"
        assert rows["bitmex"][5] == "all 10" and rows["deribit-options"][5] == "all 10"
        assert int(rows["okx-spot-futures-swap"][-1].rstrip(" |").replace(",", "")) == 290
    assert "simulated exchange" in stdout


def test_bench_orders_runs_both_journal_modes() -> None:
    stdout = run_bench("bench_orders", "--rates", "300", "--seconds", "1.5", timeout=180)
    rows = [line for line in stdout.splitlines() if line.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| in-process: risk + matching + reports, no I/O",
        "| WebSocket round trip at 300/s, journal without fsync",
        "| WebSocket round trip at 300/s, journal fdatasync'd",
    ]
    for row in rows[1:]:
        sent = float(row.split(" | ")[1].replace(",", ""))
        assert 250 <= sent <= 350  # the pacing held the rate


def test_bench_fanout_delivers_what_the_feed_offers() -> None:
    stdout = run_bench("bench_fanout", "--quick", "--seconds", "1.5", timeout=120)
    rows = [line.split(" | ") for line in stdout.splitlines() if line.startswith("| 20 ")]
    assert [r[3] for r in rows] == ["baseline: a frame per update", "hub FanoutNode"]
    for row in rows:
        # 20 clients x 100 updates/s each: every offered update arrives (some book updates
        # are trades in the count; the generator's pacing allows a few percent).
        assert 1800 <= float(row[4].replace(",", "")) <= 2200, row


@pytest.mark.services
def test_bench_queries_answers_equal_from_bars_and_trades(services: dict[str, str]) -> None:
    # the bench asserts both give the same rows
    stdout = run_bench("bench_queries", "--trades", "100000", "--runs", "3", timeout=180)
    assert "100,000 trades stored" in stdout
    assert "| from the stored bars |" in stdout


def test_bench_hostile_quick_prints_both_tables() -> None:
    stdout = run_bench("bench_hostile", "--quick")
    lines = stdout.splitlines()
    assert lines[0].startswith("CPU: ")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert "baseline: no hostile client" in rows and "hostile burst, whole run" in rows
    assert "40 requests x 50 entries, 2000 snapshots received" in stdout
    (left,) = [line for key, line in rows.items() if key.startswith("2 s after they left")]
    cells = [c.strip() for c in left.strip("|").split("|")]
    assert cells[2:4] == ["0", "0"]  # no view, no view history left
