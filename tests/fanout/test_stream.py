"""Snapshot + buffered-delta sync of a fanout node's book."""

from __future__ import annotations

from fanout.stream import BookStream, Outcome
from hub.events import BookSnapshot, BookUpdate


def upd(seq: int, *changes: tuple[int, int, int]) -> BookUpdate:
    return BookUpdate("SIM", "X", seq, seq, seq, changes)


def snap(
    seq: int, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]
) -> BookSnapshot:
    return BookSnapshot("SIM", "X", seq, seq, bids, asks)


def test_buffered_updates_at_or_below_snapshot_are_dropped() -> None:
    s = BookStream("SIM", "X")
    for seq, change in [(4, (0, 100, 1)), (5, (0, 100, 2)), (6, (1, 105, 7)), (7, (0, 99, 3))]:
        assert s.on_update(upd(seq, change)) is Outcome.BUFFERED
    assert s.needs_snapshot_after() == 3
    assert s.try_sync(snap(5, ((100, 2),), ((106, 1),)))
    assert s.seq == 7
    assert s.book.depth(0) == [(100, 2), (99, 3)]
    assert s.book.depth(1) == [(105, 7), (106, 1)]


def test_snapshot_older_than_buffer_is_refused() -> None:
    s = BookStream("SIM", "X")
    s.on_update(upd(10, (0, 100, 1)))
    assert not s.try_sync(snap(8, ((100, 5),), ()))
    assert not s.synced
    assert s.try_sync(snap(9, ((100, 5),), ()))
    assert s.book.depth(0) == [(100, 1)]


def test_duplicates_ignored_and_gap_unsyncs() -> None:
    s = BookStream("SIM", "X")
    assert s.try_sync(snap(3, ((100, 1),), ()))
    assert s.on_update(upd(4, (0, 100, 2))) is Outcome.APPLIED
    assert s.on_update(upd(4, (0, 100, 9))) is Outcome.DUPLICATE
    assert s.on_update(upd(2, (0, 100, 9))) is Outcome.DUPLICATE
    assert s.book.depth(0) == [(100, 2)]
    assert s.on_update(upd(6, (0, 100, 4))) is Outcome.GAP
    assert not s.synced and s.gaps == 1
    assert not s.try_sync(snap(4, ((100, 2),), ()))
    assert s.try_sync(snap(5, ((100, 3),), ()))
    assert s.seq == 6 and s.book.depth(0) == [(100, 4)]


def test_hole_inside_buffer_waits_for_newer_snapshot() -> None:
    s = BookStream("SIM", "X")
    for seq in (2, 3, 5, 6):
        s.on_update(upd(seq, (0, 100, seq)))
    assert not s.try_sync(snap(1, (), ()))
    assert s.needs_snapshot_after() == 4
    assert s.try_sync(snap(4, ((100, 4),), ()))
    assert s.seq == 6 and s.book.depth(0) == [(100, 6)]
