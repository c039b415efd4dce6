"""``hub export``: a venue capture and an ITCH sample exported, read back from NDJSON, CSV
and Parquet, rebuild exactly the books and trades their replays end with; two sources merge
in time order; a bad source is named with exit code 2, as for ``hub replay``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.files import itch_summary
from feedhandler.files import sample
from feedhandler.files.capture_write import write_gemini_capture
from feedhandler.files.replay import replay_capture
from hub.decimals import Unit
from tests.conftest import HUB, ROOT
from tests.feedhandler.files.test_export import read_back, rebuild


def source(kind: str, path: Path) -> str:
    """How ``hub export`` (and the replay endpoint) name a source."""
    return f"{kind}:{path}"


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUB, "export", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    folder = tmp_path_factory.mktemp("export-cli")
    capture = folder / sample.CAPTURE_NAME
    write_gemini_capture(capture, 7)
    yield {"capture": capture, "itch": sample.write_itch(folder, 7)}


def top(book: dict[str, str], bids: bool, n: int = 5) -> list[list[str]]:
    prices = sorted(book, key=Decimal, reverse=bids)[:n]
    return [[p, book[p]] for p in prices]


@pytest.mark.parametrize("form", ["ndjson", "csv", "parquet"])
def test_a_capture_exports_to_the_books_and_trades_of_its_replay(
    files: dict[str, Path], tmp_path: Path, form: str
) -> None:
    out = tmp_path / f"capture.{form}"
    done = export(source("capture", files["capture"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = read_back(out, form)
    books, trades = rebuild(rows)
    summary = replay_capture(files["capture"])
    for symbol, want in summary["symbols"].items():
        bids, asks = books[symbol]
        assert top(bids, True) == want["bids"] and top(asks, False) == want["asks"]
        assert sum(1 for t in trades if t[0] == symbol) == want["trades"] > 20
    assert {r["venue"] for r in rows} == {"GEMINI"}
    assert {r["canonical"] for r in rows} == {"BTC-USD", "ETH-USD"}
    assert all(len(r["price"].split(".")[1]) == 2 for r in rows if r["price"])
    assert all(len(r["size"].split(".")[1]) == 6 for r in rows if r["size"])


@pytest.mark.parametrize("form", ["ndjson", "csv", "parquet"])
def test_an_itch_sample_exports_to_the_books_of_its_replay(
    files: dict[str, Path], tmp_path: Path, form: str
) -> None:
    out = tmp_path / "itch.out"
    done = export(source("itch", files["itch"]), "--out", str(out), "--format", form)
    assert done.returncode == 0, done.stderr
    books, trades = rebuild(read_back(out, form))
    summary = itch_summary(files["itch"])
    tick, lot = Unit("0.0001"), Unit("1")
    for symbol, want in summary["symbols"].items():
        bids, asks = books[symbol]
        assert top(bids, True) == [[tick.to_str(p), lot.to_str(s)] for p, s, _n in want["bids"]]
        assert top(asks, False) == [[tick.to_str(p), lot.to_str(s)] for p, s, _n in want["asks"]]
    assert len(trades) > 100


def test_two_sources_merge_in_time_order(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "both.ndjson"
    done = export(
        source("capture", files["capture"]), source("itch", files["itch"]), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = read_back(out, "ndjson")
    assert {r["venue"] for r in rows} == {"GEMINI", "ITCH"}
    times = [r["ts_event"] for r in rows]
    assert times == sorted(times)
    alone = read_back_export(files, tmp_path)
    assert sorted(map(repr, rows)) == sorted(map(repr, alone))  # the same rows, interleaved


def read_back_export(files: dict[str, Path], tmp_path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for kind in ("capture", "itch"):
        out = tmp_path / f"{kind}-alone.ndjson"
        assert export(source(kind, files[kind]), "--out", str(out)).returncode == 0
        rows += read_back(out, "ndjson")
    return rows


def test_a_time_range_and_channels_select_rows(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "all.ndjson"
    assert export(source("capture", files["capture"]), "--out", str(out)).returncode == 0
    rows = read_back(out, "ndjson")
    times = sorted({r["ts_event"] for r in rows})
    start, end = times[len(times) // 3], times[2 * len(times) // 3]
    cut = tmp_path / "cut.ndjson"
    done = export(
        source("capture", files["capture"]),
        *("--from", str(start), "--to", str(end), "--channels", "trades", "--out", str(cut)),
    )
    assert done.returncode == 0, done.stderr
    got = read_back(cut, "ndjson")
    assert got and all(start <= r["ts_event"] <= end and r["kind"] == "trade" for r in got)
    assert got == [r for r in rows if r["kind"] == "trade" and start <= r["ts_event"] <= end]


def test_a_bad_source_is_named_with_exit_code_2(files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl.zst"
    done = export(source("capture", files["capture"]), source("capture", missing), "--out", "-")
    assert done.returncode == 2
    assert str(missing) in done.stderr and done.stderr.startswith("hub: error: ")
    bad = export(source("itch", files["itch"]), "--channels", "quotes", "--out", "-")
    assert bad.returncode == 2 and "unknown channel 'quotes'" in bad.stderr
