"""A fanout node's /healthz tells the truth: a stream that stopped moving, duplicates that
climb without a new seq, a source that went silent each make it not ok, named."""

from __future__ import annotations

from bus.local import MemorySnapshots
from fanout.node import FanoutNode
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument, Status

EPOCH = 1_764_000_000_000_000_000


def node_with_stream(**cfg: float) -> FanoutNode:
    node = FanoutNode(FanoutConfig(**cfg), MemorySnapshots())  # type: ignore[arg-type]
    node.on_event(Instrument("SIM", "X", "0.01", "1"))
    stream = node.streams["SIM", "X"]
    assert stream.try_sync(BookSnapshot("SIM", "X", 10, 0, ((100, 5),), ((101, 3),), None, EPOCH))
    return node


def update(seq: int) -> BookUpdate:
    return BookUpdate("SIM", "X", seq, seq, seq, ((0, 100, seq),), epoch=EPOCH)


def test_a_moving_stream_is_healthy() -> None:
    node = node_with_stream(stale_after_s=30.0, max_duplicates=5)
    for seq in range(11, 20):
        node.on_event(update(seq))
    health = node.health()
    assert health["ok"] is True and health["stuck"] == [] and health["source_silent_s"] is None


def test_duplicates_without_a_new_seq_name_the_stream_stuck() -> None:
    """The frozen node of a feed restart without a new epoch: every update is a duplicate."""
    node = node_with_stream(stale_after_s=30.0, max_duplicates=5)
    node.on_event(update(11))
    for seq in (1, 2, 3, 4):
        node.on_event(update(seq))
    assert node.health()["ok"] is True
    node.on_event(update(5))
    health = node.health()
    assert health["ok"] is False
    assert health["stuck"] == [
        {"venue": "SIM", "symbol": "X", "reason": "5 duplicate updates since seq 11"}
    ]
    node.on_event(update(12))  # the seq moves again
    assert node.health()["ok"] is True


def test_a_live_stream_without_a_new_seq_for_too_long_is_stuck() -> None:
    node = node_with_stream(stale_after_s=30.0)
    node.on_event(update(11))
    stream = node.streams["SIM", "X"]
    stream.advanced_at -= 31.0  # its last new seq, 31 s ago; the source still talks
    health = node.health()
    assert health["ok"] is False and health["stuck"][0]["reason"].startswith("seq 11 for 3")
    stream.venue_status = "halted"  # a halted venue may be quiet
    assert node.health()["ok"] is True


def test_a_silent_source_is_not_ok_and_zero_turns_the_check_off() -> None:
    node = node_with_stream(stale_after_s=30.0)
    node.last_event -= 45.0
    node.streams["SIM", "X"].advanced_at = node.last_event
    health = node.health()
    assert health["ok"] is False and health["source_silent_s"] >= 45.0
    off = node_with_stream(stale_after_s=0.0)
    off.last_event -= 3600.0
    off.streams["SIM", "X"].advanced_at -= 3600.0
    assert off.health()["ok"] is True


def test_a_source_that_ended_may_be_silent() -> None:
    """A file replay that reached its end says so (status closed): its final books stay
    served and the node stays ok however long the silence."""
    node = node_with_stream(stale_after_s=30.0)
    node.on_event(Status("SIM", "X", "closed", "replay finished", 1, 1))
    node.last_event -= 3600.0
    node.streams["SIM", "X"].advanced_at -= 3600.0
    assert node.health()["ok"] is True
