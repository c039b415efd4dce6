"""Each benchmark runs (small sizes) and cross-checks what it measures: none can rot."""

from __future__ import annotations

import random
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
        "1,000 deep (",
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
        "| the same with 1,000 of the account's orders resting",
        "| WebSocket round trip at 300/s, journal without fsync",
        "| WebSocket round trip at 300/s, journal fdatasync'd",
    ]
    for row in rows[2:]:
        sent = float(row.split(" | ")[1].replace(",", ""))
        assert 250 <= sent <= 350  # the pacing held the rate


def test_bench_fanout_delivers_what_the_feed_offers() -> None:
    stdout = run_bench("bench_fanout", "--quick", "--seconds", "1.5", timeout=120)
    head = next(line for line in stdout.splitlines() if line.startswith("| scenario "))
    columns = [c.strip() for c in head.strip("|").split("|")]
    rows = [
        dict(zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in stdout.splitlines()
        if line.startswith("| quick ")
    ]
    assert [r["server"] for r in rows] == ["baseline: a frame per update", "hub FanoutNode"]
    for r in rows:
        assert r["clients connected"] == "20" and r["workers"] == "1"
        # 20 clients x 100 updates/s each, counted per update (every ts_recv): every offered
        # update arrives (some are trades; the generator's pacing allows a few percent).
        assert 1800 <= float(r["delivered updates/s"].replace(",", "")) <= 2200, r
        assert r["closed"] == "0"
    # one verifying client per symbol ended on the feed's book, with every seq in order
    assert rows[0]["books exact"] == "4/4"
    assert rows[1]["books exact"].startswith("4/4 (")  # and the node's checksums verified
    assert rows[1]["goal"] == "all connected, every verified book exact: met"


def test_bench_fanout_counts_every_stamp_once_whatever_the_reads() -> None:
    from bench.fanout_clients import Reader, Stats

    base = 1_764_769_999_000_000_000
    frames = b"".join(
        b"\x81\x7e\x00\x00["
        + b",".join(
            b'{"type":"book","seq":%d,"ts_recv":%d,"bids":[]}' % (i, base + i)
            for i in range(k * 3, k * 3 + 3)
        )
        + b"]"
        for k in range(500)
    )
    for seed in range(10):
        stats = Stats()
        reader = Reader(b"", b"", stats)
        reader.open, stats.measuring = True, True
        rng, at = random.Random(seed), 0
        while at < len(frames):
            step = rng.randrange(1, 120)
            reader.data_received(frames[at : at + step])
            at += step
        assert [int(s) for s in stats.raw.split()] == [base + i for i in range(1500)]
        assert stats.updates == 1500
        assert sum(stats.histogram().values()) == 1500


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


def test_bench_fanout_verifier_catches_a_gap_and_a_wrong_checksum() -> None:
    import orjson

    from bench.fanout_clients import Stats, Verifier

    def frame(msg: dict[str, object]) -> bytes:
        payload = orjson.dumps(msg)
        return b"\x81\x7e" + len(payload).to_bytes(2, "big") + payload

    snap = {"type": "snapshot", "seq": 5, "bids": [["1.00", "2"]], "asks": [["1.01", "1"]]}
    book = {"type": "book", "first": 6, "seq": 6, "bids": [["1.00", "0"]], "asks": []}
    for bad, error in (
        ({**book, "first": 7, "seq": 7}, "SequenceGap"),
        ({**book, "checksum": 12345}, "ChecksumMismatch"),
    ):
        verifier = Verifier(b"", b"", Stats(), "0.01", "0.0001")
        verifier.open = True
        verifier.data_received(frame(snap) + frame(bad))
        assert (verifier.result()["error"] or "").startswith(error)
    verifier = Verifier(b"", b"", Stats(), "0.01", "0.0001")
    verifier.open = True
    verifier.data_received(frame(snap) + frame(book)[:7])
    verifier.data_received(frame(book)[7:])
    got = verifier.result()
    assert (got["error"], got["seq"], got["bids"], got["asks"]) == (None, 6, {}, {101: 10000})
