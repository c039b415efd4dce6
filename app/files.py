"""Bodies of the file commands of the ``hub`` CLI: ``hub sample``, ``hub replay itch``
(``app/cli.py`` declares their flags)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def itch_summary(path: Path, symbols: list[str] | None = None) -> dict[str, Any]:
    """What ``hub replay itch`` prints: messages per type, and per stock its trading state,
    executions, resting orders and top five levels (prices in 1/10000 dollars)."""
    from feedhandler.files.itch import replay_itch

    replay = replay_itch(path, symbols)
    stocks: dict[str, Any] = {}
    for symbol in sorted(replay.symbols()):
        book = replay.book(symbol)
        bids, asks = book.snapshot(5)
        count, shares = replay.executions(symbol)
        stocks[symbol] = {
            "state": replay.trading_state(symbol),
            "executions": count,
            "executed_shares": shares,
            "orders": book.order_count(),
            "bids": [list(b) for b in bids],
            "asks": [list(a) for a in asks],
        }
    return {
        "venue": "ITCH",
        "messages": replay.messages,
        "types": dict(sorted(replay.counts().items())),
        "symbols": stocks,
    }


def replay_itch_command(path: Path, symbol: str | None) -> int:
    print(json.dumps(itch_summary(path, [symbol] if symbol else None), indent=2))
    return 0


def sample_command(folder: Path, seed: int) -> int:
    """Write the sample files; print each with the command that replays it."""
    from feedhandler.files.sample import write_samples

    samples = write_samples(folder, seed)
    for s in samples:
        size = sum(f.stat().st_size for f in s.files)
        print(f"{s.kind}: {s.about} ({size // 1024} KiB)")
        for f in s.files:
            print(f"  wrote {f}")
        print(f"  replay: {s.shell()}")
    return 0
