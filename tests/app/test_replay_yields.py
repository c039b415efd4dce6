"""A file replay at --speed max shares the event loop: it yields per batch (ITCH) or per
2 ms slice (the one-record batches of captures, LOBSTER, Databento), so a node's HTTP and
WebSocket keep answering while a large file replays. Counted, not timed: a task that only
needs the loop must get it between the replay's batches."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from app.launch import build_source
from bus.local import InProcessBus, MemorySnapshots
from feedhandler.files.itch import ITCH_BATCH
from feedhandler.files.pacing import TimeSlice
from hub.config import FeedConfig
from testing import itchgen as g

MESSAGES = 300_000


def test_time_slice_yields_after_its_slice_or_its_count() -> None:
    now = [0.0]
    slicer = TimeSlice(slice_s=0.002, every=4, clock=lambda: now[0])
    assert [slicer.due() for _ in range(8)] == [False, False, False, True] * 2  # by count
    now[0] += 0.003
    assert slicer.due()  # by time, after one batch
    assert slicer.yields == 3


async def test_itch_replay_at_max_speed_lets_other_tasks_run(tmp_path: Path) -> None:
    path = tmp_path / "2024-03-01.itch"
    path.write_bytes(g.random_session(7, MESSAGES, ("AAPL", "MSFT")))
    cfg = FeedConfig(source="itch", file=str(path), symbols=("AAPL", "MSFT"), speed="max")
    source = build_source(cfg, InProcessBus(), MemorySnapshots())
    turns = 0

    async def observer() -> None:
        nonlocal turns
        while not source.health()["finished"]:
            turns += 1
            await asyncio.sleep(0)

    watching = asyncio.create_task(observer())
    await asyncio.sleep(0)  # the observer starts before the replay
    replay = asyncio.create_task(source.run())
    await asyncio.wait_for(watching, 120)
    replay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await replay
    health = source.health()
    batches = MESSAGES // ITCH_BATCH
    assert health["records"] >= batches
    # one loop turn per ITCH batch at least (before the fix: none in 256 batches)
    assert health["loop_yields"] >= batches
    assert turns >= batches
