"""The shared sync engine: buffer until a snapshot, drop what it covers, detect gaps and crosses."""

from __future__ import annotations

from feedhandler.sync import BookSync, Delta, Snapshot
from hub.events import BookUpdate, Status
from orderbook_core import L2Book
from orderbook_core.types import F_LAST, F_SNAPSHOT


def test_buffered_deltas_after_the_snapshot_apply_in_order() -> None:
    sync = BookSync("V", "S", continuous=True)
    assert sync.delta(Delta(((0, 100, 1),), first=5, last=6), 1) == []
    assert sync.delta(Delta(((0, 100, 2),), first=7, last=8), 1) == []
    out = sync.snapshot(Snapshot(((0, 100, 9), (1, 101, 4)), seq=6), 2)
    assert isinstance(out[0], BookUpdate) and out[0].flags == F_SNAPSHOT | F_LAST
    assert (out[0].seq, out[0].changes) == (1, ((0, 100, 9), (1, 101, 4)))
    assert [type(e) for e in out[1:]] == [BookUpdate]  # 5..6 covered by the snapshot, 7..8 applied
    assert out[1] == BookUpdate("V", "S", 2, 0, 2, ((0, 100, 2),), F_LAST)
    assert sync.book.snapshot() == ([(100, 2)], [(101, 4)])
    assert sync.venue_id == 8


def test_gap_marks_stale_and_waits_for_a_snapshot() -> None:
    sync = BookSync("V", "S", continuous=True)
    sync.snapshot(Snapshot(((0, 100, 1),), seq=10), 0)
    assert sync.delta(Delta(((0, 100, 2),), first=12, last=12), 7) == [
        Status("V", "S", "stale", "gap", 0, 7)
    ]
    assert not sync.live and sync.stats.gaps == 1 and sync.stats.resyncs == 1
    assert sync.book.snapshot() == ([(100, 1)], [])
    assert sync.delta(Delta(((0, 100, 3),), first=13, last=13), 8) == []  # buffered, no repeat


def test_resync_publishes_the_difference_as_one_flagged_update() -> None:
    """Consumers holding the stale book reach the fresh one by applying one ordinary update."""
    sync = BookSync("V", "S", continuous=True)
    sync.snapshot(Snapshot(((0, 100, 1), (0, 99, 5), (1, 101, 2)), seq=10), 0)
    sync.invalidate("checksum", 3)
    out = sync.snapshot(Snapshot(((0, 100, 4), (1, 101, 2), (1, 102, 7)), seq=20), 9)
    update, status = out
    assert isinstance(update, BookUpdate) and update.seq == 2
    assert update.flags == F_SNAPSHOT | F_LAST
    assert sorted(update.changes) == [(0, 99, 0), (0, 100, 4), (1, 102, 7)]
    assert status == Status("V", "S", "resynced", "snapshot", 0, 9)
    assert sync.stats.resynced == 1
    mirror = L2Book()
    mirror.apply([(0, 100, 1), (0, 99, 5), (1, 101, 2)])
    mirror.apply(update.changes)
    assert mirror.snapshot() == sync.book.snapshot()


def test_crossed_book_is_invalidated() -> None:
    sync = BookSync("V", "S")
    sync.snapshot(Snapshot(((0, 100, 1), (1, 102, 1))), 0)
    sync.delta(Delta(((0, 103, 1),)), 0)
    assert sync.stats.crossed == 1 and not sync.live


def test_depth_trim_publishes_the_deletions() -> None:
    sync = BookSync("V", "S", depth=2)
    sync.snapshot(Snapshot(((1, 101, 1), (1, 102, 1))), 0)
    (update,) = sync.delta(Delta(((1, 100, 5),)), 0)
    assert isinstance(update, BookUpdate)
    assert update.changes == ((1, 100, 5), (1, 102, 0))
    assert sync.book.depth(1) == [(100, 5), (101, 1)]
