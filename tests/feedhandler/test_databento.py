"""Databento MBO replay (CSV and DBN) against books the matching engine really had."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import databento_dbn as dbn
import pytest
import zstandard

from feedhandler.databento import DatabentoError, MboRecord, MboReplay, replay_databento
from hub.events import BUY, NO_AGGRESSOR, SELL, Trade
from orderbook_core import MatchingEngine
from orderbook_core.engine_types import OrderType

COLUMNS = [
    "ts_recv",
    "ts_event",
    "rtype",
    "publisher_id",
    "instrument_id",
    "action",
    "side",
    "price",
    "size",
    "channel_id",
    "order_id",
    "flags",
    "ts_in_delta",
    "sequence",
]
SCALE = 10**7  # engine ticks of 1/100 -> Databento 1e-9 fixed point


def session(seed: int, commands: int) -> tuple[list[list[MboRecord]], list[tuple[object, object]]]:
    """Run the engine; return MBO records per command and the engine's book after each."""
    rng = random.Random(seed)
    engine = MatchingEngine()
    events_out: list[list[MboRecord]] = []
    books: list[tuple[object, object]] = []
    seq = 0
    live: list[int] = []

    def rec(action: str, side: int | None, price: int, size: int, oid: int) -> MboRecord:
        nonlocal seq
        seq += 1
        return MboRecord(
            seq * 1000,
            seq * 1000,
            42,
            action,
            "N" if side is None else ("B" if side == 0 else "A"),
            price * SCALE,
            size,
            oid,
            0,
            seq,
        )

    for oid in range(1, commands + 1):
        records: list[MboRecord] = []
        if live and rng.random() < 0.25:
            victim = live.pop(rng.randrange(len(live)))
            order = engine.order(victim)
            if order is None:
                continue
            engine.cancel(victim, 1)
            records.append(rec("C", order[2], order[4], order[6], victim))
        else:
            side = rng.randrange(2)
            price = 10_000 + rng.randrange(1, 20) * (-1 if side == 0 else 1)
            if rng.random() < 0.15:
                price = 10_000 + 6 * (1 if side == 0 else -1)
            before = {o: engine.order(o) for o in live}
            events = engine.new_order(oid, 1, side, OrderType.LIMIT, price, rng.randrange(1, 50))
            for e in (e for e in events if e[0] == 2):
                _k, _s, px, qty, aggressor, maker, _taker, _ma, _ta = e
                records.append(rec("T", aggressor, px, qty, oid))
                records.append(rec("F", 1 - aggressor, px, qty, maker))
                after = engine.order(maker)
                if after is None:
                    records.append(rec("C", 1 - aggressor, px, qty, maker))
                    live.remove(maker)
                else:
                    records.append(rec("M", 1 - aggressor, px, after[6], maker))
            assert before is not None
            resting = engine.order(oid)
            if resting is not None:
                records.append(rec("A", side, price, resting[6], oid))
                live.append(oid)
        if not records:
            continue
        last = records[-1]
        records[-1] = MboRecord(
            last.ts_recv,
            last.ts_event,
            last.instrument_id,
            last.action,
            last.side,
            last.price,
            last.size,
            last.order_id,
            128,
            last.sequence,
        )
        events_out.append(records)
        books.append(
            (
                [(p * SCALE, s, n) for p, s, n in engine.depth(0)],
                [(p * SCALE, s, n) for p, s, n in engine.depth(1)],
            )
        )
    return events_out, books


def write_csv(path: Path, batches: list[list[MboRecord]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in (r for b in batches for r in b):
            w.writerow(
                [
                    r.ts_recv,
                    r.ts_event,
                    160,
                    1,
                    r.instrument_id,
                    r.action,
                    r.side,
                    r.price,
                    r.size,
                    0,
                    r.order_id,
                    r.flags,
                    0,
                    r.sequence,
                ]
            )


def write_dbn(path: Path, batches: list[list[MboRecord]]) -> None:
    meta = dbn.Metadata(
        dataset="TEST.MBO",
        schema=dbn.Schema.from_str("mbo"),
        start=0,
        stype_in=dbn.SType.from_str("raw_symbol"),
        stype_out=dbn.SType.from_str("instrument_id"),
        end=0,
        symbols=["TEST"],
        partial=[],
        not_found=[],
        mappings=[],
    )
    data = meta.encode()
    for r in (r for b in batches for r in b):
        data += bytes(
            dbn.MBOMsg(
                publisher_id=1,
                instrument_id=r.instrument_id,
                ts_event=r.ts_event,
                order_id=r.order_id,
                price=r.price,
                size=r.size,
                action=dbn.Action.from_str(r.action),
                side=dbn.Side.from_str(r.side),
                ts_recv=r.ts_recv,
                flags=r.flags,
                sequence=r.sequence,
            )
        )
    path.write_bytes(zstandard.ZstdCompressor().compress(data))


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
        [sys.executable, "-m", "hub.cli", "replay", "databento", str(tmp_path / "day.dbn.zst")],
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
        [sys.executable, "-m", "hub.cli", "replay", "databento", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "bad.csv line 2" in out.stderr
