"""The client's book mirror across epochs and with the source's checksums, and its trade
dedupe by (epoch, seq)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from client.market import BookMirror, ChecksumMismatch, HubClient
from orderbook_core.types import checksum


def snapshot(epoch: int, seq: int, bids: list[list[str]]) -> dict[str, Any]:
    return {"type": "snapshot", "epoch": epoch, "seq": seq, "bids": bids, "asks": []}


def delta(epoch: int, seq: int, bids: list[list[str]], cs: int | None = None) -> dict[str, Any]:
    msg = {"type": "book", "epoch": epoch, "first": seq, "seq": seq, "bids": bids, "asks": []}
    if cs is not None:
        msg["checksum"] = cs
    return msg


def test_a_delta_of_another_epoch_waits_for_its_snapshot() -> None:
    m = BookMirror("0.01", "1")
    assert m.apply(snapshot(5, 40, [["1.00", "2"]]))
    assert not m.apply(delta(6, 1, [["0.50", "1"]]))  # a new epoch: seq 1 is not "old"
    assert m.other_epoch == 1 and m.depth(0) == [(100, 2)]
    assert m.apply(snapshot(6, 1, [["0.50", "1"]]))
    assert m.apply(delta(6, 2, [["0.51", "1"]], checksum([(51, 1), (50, 1)], [])))
    assert (m.epoch, m.seq, m.checksums) == (6, 2, 1)
    with pytest.raises(ChecksumMismatch):
        m.apply(delta(6, 3, [["0.52", "1"]], 12345))


def test_the_client_delivers_each_trade_once_by_epoch_and_seq() -> None:
    c = HubClient("ws://localhost:1")

    def trade(epoch: int, seq: int) -> dict[str, Any]:
        return {"type": "trade", "venue": "SIM", "symbol": "X", "epoch": epoch, "seq": seq}

    got = [c._apply(trade(e, s)) for e, s in [(1, 1), (1, 2), (1, 2), (1, 1), (2, 1), (1, 2)]]
    assert [None if g is None else (g["epoch"], g["seq"]) for g in got] == [
        (1, 1),
        (1, 2),
        None,
        None,
        (2, 1),
        None,
    ]
    assert c.duplicates == 3


def test_trades_resume_from_the_epoch_delivered_last() -> None:
    c = HubClient("ws://localhost:1")
    for epoch, seq in [(9, 1), (9, 2), (3, 1), (3, 2), (3, 3)]:  # a clock that stepped back
        c._apply({"type": "trade", "venue": "SIM", "symbol": "X", "epoch": epoch, "seq": seq})
    assert list(c.trades["SIM", "X"].items()) == [(9, 2), (3, 3)]


def test_the_checksummed_top_levels_follow_every_change_of_a_deep_book() -> None:
    """The mirror keeps its best levels between messages (a deep book is not sorted per
    message): after any mix of changes above, at and below them, they are the book's."""
    rng = random.Random(7)
    m = BookMirror("1", "1")
    bids = [[str(p), str(rng.randint(1, 9))] for p in range(1000, 1200)]
    asks = [[str(p), str(rng.randint(1, 9))] for p in range(1200, 1400)]
    m.apply({"type": "snapshot", "seq": 1, "bids": bids, "asks": asks})
    for seq in range(2, 600):
        changes: tuple[list[list[str]], list[list[str]]] = ([], [])
        for _ in range(rng.randint(1, 4)):
            side = rng.randint(0, 1)
            near = max(m.bids) if side == 0 else min(m.asks)
            price = near - rng.randint(-1, 15) if side == 0 else near + rng.randint(-1, 15)
            changes[side].append([str(price), str(rng.choice([0, 0, 1, 5]))])
        bids_after, asks_after = dict(m.bids), dict(m.asks)
        for book, side_changes in ((bids_after, changes[0]), (asks_after, changes[1])):
            for p, s in side_changes:
                if s == "0":
                    book.pop(int(p), None)
                else:
                    book[int(p)] = int(s)
        top_bids = sorted(bids_after.items(), reverse=True)[:10]
        top_asks = sorted(asks_after.items())[:10]
        msg = {"type": "book", "first": seq, "seq": seq, "bids": changes[0], "asks": changes[1]}
        assert m.apply({**msg, "checksum": checksum(top_bids, top_asks)})
        assert (m.top(0, 10), m.top(1, 10)) == (top_bids, top_asks)
    assert m.checksums == 598
