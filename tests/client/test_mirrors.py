"""The client's book mirror across epochs and with the source's checksums, and its trade
dedupe by (epoch, seq)."""

from __future__ import annotations

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
