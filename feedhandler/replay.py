"""Replay a recorded capture through the same parser + sync engine + books as live.

``replay_capture`` feeds every received frame to the venue's sans-I/O parser
(REST lines will answer snapshot requests once a venue needs them), paced at
``speed`` (``max`` or a multiple of real time), and returns a summary per
symbol: the counts a user checks a feed by, plus the final top 5 levels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from feedhandler.capture import CaptureError, read_capture, read_header
from feedhandler.venues.kraken import KrakenParser
from hub.decimals import Unit
from hub.events import BookSnapshot, BookUpdate, Trade

PARSERS = {"kraken": KrakenParser}
EXCHANGES = {"KRAKEN": "kraken", "BINANCE": "binance", "COINBASE": "coinbase"}


def venue_of(path: Path) -> str:
    exchange = str(read_header(path).get("exchange", "")).upper()
    if exchange not in EXCHANGES:
        raise CaptureError(f"{path}: header names unknown exchange {exchange!r}; pass --venue")
    return EXCHANGES[exchange]


def replay_capture(path: Path, venue: str | None = None, speed: str = "max") -> dict[str, Any]:
    venue = venue or venue_of(path)
    if venue not in PARSERS:
        raise CaptureError(
            f"venue {venue!r} has no replay parser yet (supported: {', '.join(sorted(PARSERS))})"
        )
    factor = 0.0 if speed == "max" else float(speed)
    parser = PARSERS[venue]()
    counts: dict[str, dict[str, int]] = {}
    started, first_ts = time.monotonic(), None
    for line in read_capture(path):
        if line.kind != "recv":
            continue
        if factor > 0:
            first_ts = line.ts_ns if first_ts is None else first_ts
            due = started + (line.ts_ns - first_ts) / 1e9 / factor
            time.sleep(max(0.0, due - time.monotonic()))
        for event in parser.on_frame(line.data, line.ts_ns):
            c = counts.setdefault(event.symbol, {"events": 0, "trades": 0})
            c["events"] += 1
            if isinstance(event, Trade):
                c["trades"] += 1
    symbols: dict[str, Any] = {}
    for symbol, sync in sorted(parser.books.items()):
        pd, qd = parser.precisions[symbol]
        tick, lot = (
            Unit(f"{10**-pd:.{pd}f}" if pd else "1"),
            Unit(f"{10**-qd:.{qd}f}" if qd else "1"),
        )
        bids, asks = sync.book.snapshot(5)
        st = sync.stats
        symbols[symbol] = {
            **counts.get(symbol, {"events": 0, "trades": 0}),
            "book_updates": st.updates,
            "snapshots": st.snapshots,
            "checksums_verified": st.checksums_ok,
            "checksums_failed": st.checksums_failed,
            "gaps": st.gaps,
            "resyncs": st.resyncs,
            "crossed": st.crossed,
            "bids": [[tick.to_str(p), lot.to_str(s)] for p, s in bids],
            "asks": [[tick.to_str(p), lot.to_str(s)] for p, s in asks],
        }
    return {"venue": venue, "file": str(path), "malformed": parser.malformed, "symbols": symbols}


def _unit(decimals: int) -> Unit:
    return Unit("0." + "0" * (decimals - 1) + "1" if decimals else "1")


def check_failures(summary: dict[str, Any]) -> list[str]:
    """What ``--check`` refuses: failed checksums, unexplained gaps, crossed books."""
    problems = []
    for symbol, s in summary["symbols"].items():
        for key in ("checksums_failed", "gaps", "crossed"):
            if s[key]:
                problems.append(f"{symbol}: {key} = {s[key]}")
    return problems


__all__ = ["BookSnapshot", "BookUpdate", "check_failures", "replay_capture"]
