"""Stream epochs and source checksums on a node, sans-I/O: the book stream, the feeds and the
sessions of its clients when the source restarts (a new epoch) or its book and the node's
disagree."""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson

from fanout.delivery import Group
from fanout.session import Attach
from fanout.stream import BookStream, Outcome
from hub.events import BookSnapshot, BookUpdate, Instrument, LevelChange, Trade
from orderbook_core import L2Book
from orderbook_core.types import CHECKSUM_LEVELS
from tests.fanout.test_session import ask, book, message, node, opened, sent

OLD, NEW = 1_764_000_000_000_000_000, 1_764_000_500_000_000_000


class Source:
    """A feed's book and the updates it stamps, as FeedOutput stamps them."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.seq, self.book = epoch, 0, L2Book()

    def update(self, *changes: LevelChange) -> BookUpdate:
        self.seq += 1
        self.book.apply(changes)
        return BookUpdate(
            "SIM",
            "X",
            self.seq,
            self.seq,
            self.seq,
            changes,
            epoch=self.epoch,
            checksum=self.book.checksum(CHECKSUM_LEVELS),
        )

    def snapshot(self) -> BookSnapshot:
        bids, asks = self.book.snapshot()
        return BookSnapshot(
            "SIM", "X", self.seq, self.seq, tuple(bids), tuple(asks), None, self.epoch
        )


def synced(source: Source) -> BookStream:
    stream = BookStream("SIM", "X")
    stream.instrument = Instrument("SIM", "X", "0.01", "1")
    assert stream.try_sync(source.snapshot())
    return stream


def test_an_update_of_a_new_epoch_unsyncs_until_a_snapshot_of_that_epoch() -> None:
    old = Source(OLD)
    for price in range(100, 130):
        old.update((0, price, 1))
    stream = synced(old)
    assert (stream.epoch, stream.seq) == (OLD, 30)

    new = Source(NEW)  # the feed restarted: seqs start again at 1
    first = new.update((0, 90, 4), (1, 95, 2))
    assert stream.on_update(first) is Outcome.EPOCH
    assert not stream.synced and stream.epochs == 1
    assert stream.on_update(new.update((1, 96, 1))) is Outcome.BUFFERED
    # The store still holds the old epoch's book, further on than the buffer: not taken.
    assert not stream.try_sync(old.snapshot())
    new_snap = BookSnapshot("SIM", "X", 0, 0, (), (), None, NEW)  # stored at the new start
    assert stream.try_sync(new_snap)
    assert (stream.epoch, stream.seq, stream.synced) == (NEW, 2, True)
    assert stream.book.depth(0) == [(90, 4)] and stream.book.depth(1) == [(95, 2), (96, 1)]
    assert stream.on_update(new.update((0, 91, 1))) is Outcome.APPLIED
    assert stream.book.snapshot() == new.book.snapshot()


def test_a_buffer_of_one_epoch_is_dropped_when_another_starts() -> None:
    a, b = Source(OLD), Source(NEW)
    stream = BookStream("SIM", "X")
    for _ in range(3):
        assert stream.on_update(a.update((0, 100, 1))) is Outcome.BUFFERED
    assert stream.on_update(b.update((0, 50, 2))) is Outcome.BUFFERED
    assert [(u.epoch, u.seq) for u in stream.buffer] == [(NEW, 1)]
    assert stream.try_sync(BookSnapshot("SIM", "X", 0, 0, (), (), None, NEW))
    assert stream.book.depth(0) == [(50, 2)]


def test_the_source_checksum_is_verified_and_a_mismatch_unsyncs() -> None:
    source = Source(OLD)
    source.update((0, 100, 1), (1, 101, 1))
    stream = synced(source)
    assert stream.on_update(source.update((0, 99, 3))) is Outcome.APPLIED
    assert stream.checksums_ok == 1 and stream.source_checksum == source.book.checksum(10)
    # Another source's book under the same epoch and seqs (what a venue reconnect does to
    # a node that trusted its own book): the checksum says so.
    other = BookUpdate("SIM", "X", source.seq + 1, 0, 0, ((1, 101, 0),), epoch=OLD, checksum=1)
    assert stream.on_update(other) is Outcome.MISMATCH
    assert not stream.synced and stream.mismatches == 1 and "checksum" in stream.problem


def test_clients_move_to_a_new_epoch_with_a_fresh_snapshot_and_old_resumes_get_one() -> None:
    shared, stream = node(seq=10)
    stream.epoch = OLD
    session = opened(shared)
    sent(ask(session, {"op": "subscribe", "channels": [book()]}))
    attach, first = session.set_up()
    feed = shared.views.base(stream)
    assert attach == Attach(feed) and message(first)["epoch"] == OLD
    receiver = Group(frozenset({feed}))  # what the node attaches the client's feed to
    feed.targets.add(receiver)

    # A new epoch: the node buffers it, syncs from the new epoch's snapshot, resyncs feeds.
    update = BookUpdate("SIM", "X", 1, 5, 5, ((0, 80, 1),), epoch=NEW)
    assert stream.on_update(update) is Outcome.EPOCH
    assert stream.try_sync(BookSnapshot("SIM", "X", 0, 0, (), ((85, 2),), None, NEW))
    shared.views.resync(stream)
    got = [orjson.loads(m) for m in receiver.pending]
    assert [(m["type"], m["epoch"], m["seq"], m["reason"]) for m in got] == [
        ("snapshot", NEW, 1, "resync")
    ]
    assert got[0]["bids"] == [["0.80", "1"]] and got[0]["asks"] == [["0.85", "2"]]

    # A client resuming from the old epoch's seq 1 gets a snapshot, never silently nothing.
    late = opened(shared)
    resume = book(resume_from=1, epoch=OLD)
    (answer,) = sent(ask(late, {"op": "subscribe", "channels": [resume]}))
    assert answer["accepted"][0]["resume"] == "snapshot"
    assert answer["accepted"][0]["epoch"] == NEW
    attach, snapshot = late.set_up()
    assert attach == Attach(feed) and message(snapshot)["epoch"] == NEW
    # And from the new epoch's seq 1: replayed (nothing to replay).
    again = opened(shared)
    (answer,) = sent(ask(again, {"op": "subscribe", "channels": [book(resume_from=1, epoch=NEW)]}))
    assert answer["accepted"][0]["resume"] == "replayed"


def trade(seq: int, epoch: int) -> Trade:
    return Trade("SIM", "X", seq, f"{epoch}-{seq}", 100, 1, 0, seq, seq, epoch)


def hold_trades(stream: BookStream, trades: list[Trade]) -> None:
    for t in trades:
        stream.on_trade_epoch(t.epoch)
        stream.last_trade_seq = t.seq
        stream.recent_trades.append((t.seq, orjson.dumps({"type": "trade", "seq": t.seq})))


def test_trades_resume_replays_what_is_held_else_says_gap() -> None:
    shared, stream = node()
    hold_trades(stream, [trade(s, OLD) for s in range(1, 81)])  # holds the last 50: 31..80
    trades = {"channel": "trades", "symbol": "X"}

    def resume(**entry: Any) -> tuple[dict[str, Any], list[int]]:
        answer, *replayed = sent(ask(opened(shared), {"op": "subscribe", "channels": [entry]}))
        return answer["accepted"][0], [m["seq"] for m in replayed]

    answer, seqs = resume(**trades, resume_from=70, epoch=OLD)
    assert (answer["resume"], seqs) == ("replayed", list(range(71, 81)))
    answer, seqs = resume(**trades, resume_from=80, epoch=OLD)
    assert (answer["resume"], seqs) == ("replayed", [])
    answer, seqs = resume(**trades, resume_from=10, epoch=OLD)
    assert (answer["resume"], seqs) == ("gap", list(range(31, 81)))
    # The feed restarted: the new epoch's trades, and a gap for what the old one missed.
    hold_trades(stream, [trade(s, NEW) for s in range(1, 4)])
    answer, seqs = resume(**trades, resume_from=75, epoch=OLD)
    assert (answer["resume"], answer["epoch"], seqs) == ("gap", NEW, [1, 2, 3])
    # bbo and candles take resume_from and answer with their latest state.
    answer, _ = resume(channel="bbo", symbol="X", resume_from=3, epoch=NEW)
    assert answer["resume"] == "snapshot"


def test_trades_that_come_before_their_instrument_are_held_for_new_subscribers() -> None:
    """Trades and instruments are on different topics: a stream's first trade can reach the
    node before the instrument the feed published in front of it (OKX's capture does)."""
    from bus.local import MemorySnapshots
    from fanout.node import FanoutNode
    from hub.config import FanoutConfig

    node = FanoutNode(FanoutConfig(anonymous=True), MemorySnapshots())
    node.on_event(trade(1, OLD))
    node.on_event(trade(2, OLD))
    assert node.streams["SIM", "X"].recent_trades == deque()
    node.on_event(Instrument("SIM", "X", "0.01", "1"))
    node.on_event(trade(3, OLD))
    held = [(seq, orjson.loads(msg)) for seq, msg in node.streams["SIM", "X"].recent_trades]
    assert [(seq, m["seq"], m["price"]) for seq, m in held] == [(s, s, "1.00") for s in (1, 2, 3)]
    answer, *replayed = sent(  # what a resuming subscriber gets
        ask(
            opened(node.shared),
            {
                "op": "subscribe",
                "channels": [{"channel": "trades", "symbol": "X", "resume_from": 0, "epoch": OLD}],
            },
        )
    )
    assert answer["accepted"][0]["resume"] == "replayed"
    assert [m["seq"] for m in replayed] == [1, 2, 3]
