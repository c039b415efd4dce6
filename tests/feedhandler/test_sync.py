"""The shared sync engine: buffer until a snapshot, drop what it covers, detect gaps and crosses."""

from __future__ import annotations

import pytest

from feedhandler.frames import MalformedFrame
from feedhandler.sync import BUFFER_LIMIT, BookSync, Delta, Snapshot
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


def test_a_book_without_ids_drops_deltas_while_stale() -> None:
    """Kraken and Coinbase resend the snapshot on the same stream: it already includes the
    deltas that came while the book was stale, so replaying them onto it would corrupt it."""
    sync = BookSync("V", "S")
    sync.snapshot(Snapshot(((0, 100, 1), (1, 102, 1))), 0)
    sync.invalidate("checksum", 1)
    assert sync.delta(Delta(((0, 100, 7),)), 2) == []
    out = sync.snapshot(Snapshot(((0, 100, 5), (1, 102, 1))), 3)
    assert [type(e) for e in out] == [BookUpdate, Status]
    assert sync.book.snapshot() == ([(100, 5)], [(102, 1)])


def test_levels_the_core_cannot_hold_are_refused_and_the_book_kept() -> None:
    sync = BookSync("V", "S")
    sync.snapshot(Snapshot(((0, 100, 1),)), 0)
    for bad in [(0, 2**63, 1), (0, 0, 1), (1, 100, -1), (1, 100, 2**63), (2, 100, 1)]:
        with pytest.raises(MalformedFrame) as info:
            sync.delta(Delta(((0, 99, 4), bad)), 1)
        assert (info.value.reason, info.value.symbols) == ("range", ("S",))
    with pytest.raises(MalformedFrame):
        sync.snapshot(Snapshot(((0, 2**64, 1),)), 2)
    assert sync.book.snapshot() == ([(100, 1)], []) and sync.live and sync.seq == 1


def test_a_stale_books_buffer_is_bounded() -> None:
    sync = BookSync("V", "S", continuous=True)
    for i in range(1, BUFFER_LIMIT + 11):
        sync.delta(Delta(((0, 100, i),), first=i, last=i), 0)
    out = sync.snapshot(Snapshot(((0, 100, 1),), seq=5), 1)
    assert sync.stats.gaps == 1 and not sync.live  # deltas 6..10 were dropped: a gap
    assert out[-1] == Status("V", "S", "stale", "gap", 0, 1)


def test_a_checksum_sent_on_its_own_is_verified_against_the_live_book() -> None:
    sync = BookSync("V", "S", checksum=lambda book: book.size_at(0, 100))
    assert sync.verify(1, 0) == []  # no book yet: nothing to verify
    sync.snapshot(Snapshot(((0, 100, 5),)), 0)
    assert sync.verify(5, 1) == [] and sync.stats.checksums_ok == 1
    assert sync.verify(6, 2) == [Status("V", "S", "stale", "checksum", 0, 2)]
    assert sync.stats.checksums_failed == 1 and not sync.live
    assert sync.verify(6, 3) == []  # stale: waits for its snapshot
