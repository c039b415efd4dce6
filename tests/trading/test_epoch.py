"""The order path keeps its public streams' epoch across restarts that continue them."""

from __future__ import annotations

from pathlib import Path

from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput
from trading.feed import continued_epoch, publish_start
from trading.simulator import SimulatedExchange


async def test_a_restart_keeps_the_epoch_a_fresh_log_starts_a_new_one(tmp_path: Path) -> None:
    journal = tmp_path / "orders.journal"
    store = MemorySnapshots()
    output = FeedOutput(InProcessBus(), store)
    xs = [SimulatedExchange("SIM", "BTC-USD", 1)]
    fresh = await continued_epoch(None, False, journal, output, xs)
    assert (tmp_path / "orders.journal.epoch").read_text() == f"{fresh}\n"
    # Replaying the journal: the epoch beside it; a checkpoint's wins over it.
    assert await continued_epoch(None, True, journal, output, xs) == fresh
    assert await continued_epoch({"state": {"epoch": 42}}, False, journal, output, xs) == 42
    # A log without a file of its own (Kafka): the epoch of its books in the store.
    output.epoch = 77
    await publish_start(output, xs)
    assert xs[0].epoch == 77
    assert await continued_epoch(None, True, None, output, xs) == 77
    # Nothing to continue: a new epoch, whatever is lying around.
    assert await continued_epoch(None, False, journal, output, xs) not in (fresh, 42, 77)
