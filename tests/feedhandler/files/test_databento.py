"""Databento MBO replay (CSV and DBN) against books the matching engine really had."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedhandler.files.databento import DatabentoError, MboRecord, MboReplay, replay_databento
from hub.events import BUY, NO_AGGRESSOR, SELL, Trade
from testing.databento import COLUMNS, dbn_header, session, write_csv, write_dbn


@pytest.mark.parametrize("seed", [1, 2])
def test_book_equals_the_engine_after_every_event(seed: int) -> None:
    batches, books = session(seed, 1200)
    replay = MboReplay(symbols={42: "TEST"})
    trades = 0
    for batch, expected in zip(batches, books, strict=True):
        for r in batch:
            trades += sum(1 for e in replay.apply(r, "test") if type(e).__name__ == "Trade")
        assert replay.books[42].book.snapshot() == expected
    assert trades > 50
    assert replay.summary()["instruments"]["TEST"]["trades"] == trades


def test_csv_and_dbn_files_replay_to_the_same_book(tmp_path: Path) -> None:
    batches, books = session(3, 800)
    write_csv(tmp_path / "mbo.csv", batches)
    write_dbn(tmp_path / "mbo.dbn.zst", batches)
    from_csv = replay_databento(tmp_path / "mbo.csv")
    from_dbn = replay_databento(tmp_path / "mbo.dbn.zst")
    assert from_csv.books[42].book.snapshot() == books[-1]
    assert from_dbn.books[42].book.snapshot() == books[-1]
    assert from_csv.summary() == from_dbn.summary()


def test_modify_priority_clear_and_bad_records() -> None:
    replay = MboReplay()

    def r(action: str, side: str, price: int, size: int, oid: int, flags: int = 128) -> None:
        replay.apply(MboRecord(0, 0, 1, action, side, price, size, oid, flags, 0), "rec")

    r("A", "B", 100, 5, 1)
    r("A", "B", 100, 5, 2)
    r("M", "B", 100, 3, 1)  # smaller at the same price: keeps its place
    assert replay.books[1].book.order_ids(0, 100) == [1, 2]
    r("M", "B", 100, 9, 1)  # larger: back of the queue
    assert replay.books[1].book.order_ids(0, 100) == [2, 1]
    r("T", "A", 100, 2, 9)
    r("F", "B", 100, 2, 2)  # T and F leave the book alone
    assert replay.books[1].book.depth(0) == [(100, 14, 2)]
    r("R", "N", 0, 0, 0)
    assert replay.books[1].book.order_count() == 0
    with pytest.raises(DatabentoError, match="rec: cancel of unknown order 5"):
        r("C", "B", 100, 1, 5)
    with pytest.raises(DatabentoError, match="unknown action 'Z'"):
        r("Z", "B", 100, 1, 5)
    with pytest.raises(DatabentoError, match="rec: unknown side 'X'"):
        r("A", "X", 100, 1, 5)
    with pytest.raises(DatabentoError, match="rec: action A needs side B or A, got N"):
        r("A", "N", 100, 1, 5)
    assert replay.books[1].book.order_count() == 0  # refused records changed nothing


def test_trades_carry_the_aggressor_and_none_for_a_cross() -> None:
    replay = MboReplay()
    trades = []
    for side in ("B", "A", "N"):
        rec = MboRecord(0, 0, 1, "T", side, 100, 2, 0, 128, 0)
        trades += [e for e in replay.apply(rec, "rec") if isinstance(e, Trade)]
    assert [t.side for t in trades] == [BUY, SELL, NO_AGGRESSOR]
    assert [t.seq for t in trades] == [1, 2, 3]


def test_hub_replay_databento_command(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    batches, books = session(4, 300)
    write_dbn(tmp_path / "day.dbn.zst", batches)
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", "databento", str(tmp_path / "day.dbn.zst")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    top = json.loads(out.stdout)["instruments"]["42"]
    assert top["bids"][0] == list(books[-1][0][0])  # type: ignore[index]
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(COLUMNS) + "\n1,1,160,1,42,A,B,notaprice,1,0,1,128,0,1\n")
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", "databento", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "bad.csv line 2" in out.stderr


def test_a_record_that_panics_the_decoder_is_a_named_error(tmp_path: Path) -> None:
    """databento_dbn panics (a pyo3 PanicException, a BaseException) on a record shorter
    than its rtype's layout; the replay must still name the file, not crash."""
    import struct

    short_trade = struct.pack("<BBHIQ", 6, 0, 1, 42, 1000) + bytes(8)  # 24 of TradeMsg's 48
    path = tmp_path / "short.dbn"
    path.write_bytes(dbn_header() + short_trade)
    with pytest.raises(DatabentoError, match=r"short\.dbn: not a readable DBN file"):
        replay_databento(path)
