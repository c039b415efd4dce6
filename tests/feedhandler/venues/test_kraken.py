"""Kraken v1/v2 replay from the real captures: every checksum verifies, and the
published events alone rebuild the venue's book."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from feedhandler.files.capture import CaptureError, read_capture, read_header
from feedhandler.files.replay import replay_capture
from feedhandler.venues.kraken import KrakenParser
from hub.events import BookUpdate
from orderbook_core import L2Book
from tests.conftest import CAPTURES, ROOT
from tests.feedhandler.venues.capture_runner import check_capture

V1 = CAPTURES / "kraken-v1-book10_XBT-USD_2023-08-30.jsonl.zst"
V2 = CAPTURES / "kraken-v2-book10_BTC-USD_2023-08.jsonl.zst"


def frames(path: Path) -> list[tuple[str, int]]:
    return [(line.data, line.ts_ns) for line in read_capture(path) if line.kind == "recv"]


@pytest.mark.parametrize(
    ("path", "symbol", "verified"), [(V1, "XBT/USD", 979), (V2, "BTC/USD", 510)]
)
def test_every_checksum_verifies_and_events_rebuild_the_book(
    path: Path, symbol: str, verified: int
) -> None:
    parser = KrakenParser()
    mirror = L2Book()
    for text, ts in frames(path):
        for event in parser.on_frame(text, ts):
            if isinstance(event, BookUpdate):
                mirror.apply(event.changes)
            assert not mirror.is_crossed()
    stats = parser.books[symbol].stats
    assert (stats.checksums_ok, stats.checksums_failed, stats.gaps, stats.crossed) == (
        verified,
        0,
        0,
        0,
    )
    assert parser.malformed == 0
    assert mirror.snapshot() == parser.books[symbol].book.snapshot()
    assert mirror.level_count(0) == mirror.level_count(1) == 10


def test_tampered_update_fails_its_checksum_and_marks_the_book_stale() -> None:
    parser = KrakenParser()
    all_frames = frames(V2)
    for text, ts in all_frames[:5]:
        parser.on_frame(text, ts)
    bad = json.loads(all_frames[5][0])
    level = (bad["data"][0]["bids"] or bad["data"][0]["asks"])[0]
    level["qty"] = level["qty"] + 1.0
    parser.on_frame(json.dumps(bad), 0)
    sync = parser.books["BTC/USD"]
    assert sync.stats.checksums_failed == 1 and sync.stats.resyncs == 1 and not sync.live
    assert parser.on_frame(all_frames[6][0], 0) == []  # buffered until a fresh snapshot


def test_malformed_frames_are_counted_not_fatal() -> None:
    parser = KrakenParser()
    assert parser.on_frame("{not json", 0) == []
    assert parser.on_frame('{"channel":"book","type":"update","data":[{"symbol":"X/Y"}]}', 0) == []
    assert parser.on_frame('[1, {"b": [["abc", "1.0", "1.0"]]}, "book-10", "XBT/USD"]', 0) == []
    assert parser.malformed == 3
    assert "no precision known for X/Y" in parser.errors[1]


def test_v2_numbers_are_rounded_to_precision_not_truncated() -> None:
    parser = KrakenParser(precisions={"X/Y": (1, 2)})
    snap = (
        '{"channel":"book","type":"snapshot","data":[{"symbol":"X/Y",'
        '"bids":[{"price":10.05,"qty":1.005}],"asks":[{"price":11.04999,"qty":2}]}]}'
    )
    parser.on_frame(snap, 0)
    assert parser.books["X/Y"].book.snapshot() == ([(101, 101)], [(110, 200)])


def test_replay_summary_and_check_command(tmp_path: Path) -> None:
    summary = replay_capture(V1)
    s = summary["symbols"]["XBT/USD"]
    assert (s["checksums_verified"], s["checksums_failed"], s["gaps"], s["crossed"]) == (
        979,
        0,
        0,
        0,
    )
    assert len(s["bids"]) == len(s["asks"]) == 5
    assert float(s["bids"][0][0]) < float(s["asks"][0][0])
    out = check_capture(V2)
    assert json.loads(out.stdout)["symbols"]["BTC/USD"]["checksums_verified"] == 510
    frames_v1 = [
        [1, {"as": [["2.0", "1.0", "1.0"]], "bs": []}, "book-10", "XBT/USD"],
        [1, {"a": [["2.0", "3.0", "1.0"]], "c": "7"}, "book-10", "XBT/USD"],  # wrong checksum
    ]
    lines: list[dict[str, object]] = [{"t": "header", "exchange": "KRAKEN"}]
    lines += [{"t": "recv", "ts": 1.0, "data": json.dumps(f)} for f in frames_v1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", "capture", str(bad), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "XBT/USD: checksums_failed = 1" in out.stderr


def test_capture_reader_names_bad_lines(tmp_path: Path) -> None:
    assert read_header(V1)["exchange"] == "KRAKEN"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": "header"}\n{"t": "recv", "data": "x"}\nnot json\n')
    with pytest.raises(CaptureError, match=r"bad.jsonl: line 3 is not JSON"):
        list(read_capture(bad))
    headless = tmp_path / "headless.jsonl"
    headless.write_text('{"t": "recv"}\n')
    with pytest.raises(CaptureError, match="not a capture header"):
        read_header(headless)


def test_v2_reads_each_book_and_trade_frame_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v2 book frame is read once, with its numbers as exact text (no orjson read first
    whose floats are thrown away); the books and checksums stay as the capture requires."""
    from feedhandler.venues import kraken

    reads: list[str | bytes] = []
    exact = kraken._exact_json

    def read_exact(text: str) -> object:
        reads.append(text)
        return exact(text)

    def read(text: str | bytes) -> object:
        reads.append(text)
        return json.loads(text)

    monkeypatch.setattr(kraken, "_exact_json", read_exact)
    parser = KrakenParser()
    parser._loads = read
    books = 0
    for text, ts in frames(V2):
        before = len(reads)
        parser.on_frame(text, ts)
        assert len(reads) - before == 1, text[:80]
        books += '"channel":"book"' in text.replace(" ", "")
    assert books > 500
    assert parser.books["BTC/USD"].stats.checksums_ok == 510
