"""The compiled sync engine (feedhandler._sync) and its pure-Python twin (PyBookSync) agree
on random streams of snapshots, deltas, checksums and invalidations: the same events, the
same refusals, and the same book, ids, counters and buffer after every step."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedhandler.frames import INT64_MAX, MalformedFrame
from feedhandler.sync import BookSync, PyBookSync, PyDelta, Snapshot
from feedhandler.sync import Delta as SyncDelta
from hub.events import BookUpdate

pytestmark = pytest.mark.skipif(
    BookSync is PyBookSync, reason="the compiled engine is not in use (ORDERBOOK_CORE=python)"
)
Sync = Any

prices = st.integers(1, 12) | st.sampled_from([0, INT64_MAX, INT64_MAX + 1])
sizes = st.integers(0, 4) | st.sampled_from([-1, INT64_MAX])
levels = st.lists(st.tuples(st.sampled_from([0, 1, 0, 1, 2]), prices, sizes), max_size=4).map(tuple)
ids = st.integers(0, 12) | st.sampled_from([2**63 + 5, 10**30])
checksums = st.none() | st.integers(0, 3)
steps = st.one_of(
    st.tuples(st.just("snapshot"), levels, ids, checksums),
    st.tuples(st.just("delta"), levels, ids, ids, st.none() | ids, checksums, st.booleans()),
    st.tuples(st.just("invalidate"), st.sampled_from(["gap", "venue restart"])),
    st.tuples(st.just("verify"), st.integers(0, 3)),
)


def checksum(book: Any) -> int:
    """A checksum with few values, so that both matches and mismatches happen."""
    return int(book.checksum(3)) % 4


def state(sync: Sync) -> tuple[Any, ...]:
    return (
        sync.live,
        sync.seq,
        sync.venue_id,
        sync.stats,
        sync.stale_reason,
        sync.snapshot_at,
        sync.book.snapshot(),
        [(d.levels, d.first, d.last, d.ts_event, d.checksum, d.prev) for d in sync._buffer],
        sync._fresh,
        list(sync.sink),
    )


def step(sync: Sync, delta: Any, action: tuple[Any, ...], ts: int) -> Any:
    kind = action[0]
    if sync.checksum is None and kind in ("snapshot", "delta"):  # as parsers send them
        action = (*action[:-2], None, action[-1]) if kind == "delta" else (*action[:-1], None)
    try:
        if kind == "snapshot":
            _, lv, seq, crc = action
            return sync.snapshot(Snapshot(lv, seq=seq, ts_event=ts - 1, checksum=crc), ts)
        if kind == "delta":
            _, lv, first, last, prev, crc, keywords = action
            if keywords:
                d = delta(lv, first=first, last=last, ts_event=ts - 1, checksum=crc, prev=prev)
            else:
                d = delta(lv, first, last, ts - 1, crc, prev)
            return sync.delta(d, ts)
        if kind == "invalidate":
            return sync.invalidate(action[1], ts)
        return sync.verify(action[1], ts)
    except MalformedFrame as exc:
        return ("refused", exc.reason, str(exc))


@settings(max_examples=300, deadline=None)
@given(
    continuous=st.booleans(),
    depth=st.sampled_from([0, 0, 2]),
    with_checksum=st.booleans(),
    actions=st.lists(steps, max_size=30),
)
def test_the_compiled_engine_steps_as_its_twin(
    continuous: bool, depth: int, with_checksum: bool, actions: list[tuple[Any, ...]]
) -> None:
    crc = checksum if with_checksum else None
    compiled = BookSync("V", "S", depth=depth, checksum=crc, continuous=continuous, sink=[])
    twin = PyBookSync("V", "S", depth=depth, checksum=crc, continuous=continuous, sink=[])
    for ts, action in enumerate(actions, start=10):
        ours = step(compiled, SyncDelta, action, ts)
        theirs = step(twin, PyDelta, action, ts)
        assert ours == theirs, action
        assert state(compiled) == state(twin), action


def test_a_twin_delta_is_taken_and_deltas_compare_by_value() -> None:
    compiled = BookSync("V", "S", continuous=True)
    compiled.snapshot(Snapshot(((0, 5, 1),), seq=3), 1)
    (update,) = compiled.delta(PyDelta(((1, 7, 2),), 4, 4, 9), 2)
    assert isinstance(update, BookUpdate)
    assert (update.seq, update.ts_event, update.changes) == (2, 9, ((1, 7, 2),))
    assert SyncDelta(((0, 1, 1),), 1, 2) == SyncDelta(((0, 1, 1),), first=1, last=2)
    assert SyncDelta(((0, 1, 1),), 1, 2) != SyncDelta(((0, 1, 1),), 1, 3)
