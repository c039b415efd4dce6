"""Replay a recorded capture through the same parser + sync engine + books as live.

``replay_capture`` feeds every received frame to the venue's sans-I/O parser
and every REST line to it as the answer to the request the recorder made at
that moment, paced at ``speed`` (``max`` or a multiple of real time), and
returns a summary per symbol: the counts a user checks a feed by, plus the
final top 5 levels as decimal strings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from feedhandler.capture import CaptureError, read_header
from feedhandler.sources import Pacer, capture_batches
from feedhandler.venues import VENUES
from hub.events import Trade

EXCHANGES = {"KRAKEN": "kraken", "BINANCE": "binance", "COINBASE": "coinbase"}


def venue_of(path: Path) -> str:
    exchange = str(read_header(path).get("exchange", "")).upper()
    if exchange not in EXCHANGES:
        raise CaptureError(f"{path}: header names unknown exchange {exchange!r}; pass --venue")
    return EXCHANGES[exchange]


def replay_capture(path: Path, venue: str | None = None, speed: str = "max") -> dict[str, Any]:
    venue = venue or venue_of(path)
    if venue not in VENUES:
        raise CaptureError(
            f"venue {venue!r} has no replay parser (supported: {', '.join(sorted(VENUES))})"
        )
    pacer = Pacer(speed)
    parser = VENUES[venue].parser()
    counts: dict[str, dict[str, int]] = {}
    for ts, events in capture_batches(path, parser):
        wait = pacer.delay(ts)
        if wait > 0:
            time.sleep(wait)
        for event in events:
            c = counts.setdefault(event.symbol, {"events": 0, "trades": 0})
            c["events"] += 1
            c["trades"] += isinstance(event, Trade)
    symbols: dict[str, Any] = {}
    for symbol, sync in sorted(parser.books.items()):
        tick, lot = parser.units_for(symbol)
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
            **parser.extra_stats(symbol),
            "bids": [[tick.to_str(p), lot.to_str(s)] for p, s in bids],
            "asks": [[tick.to_str(p), lot.to_str(s)] for p, s in asks],
        }
    return {"venue": venue, "file": str(path), "malformed": parser.malformed, "symbols": symbols}


def check_failures(summary: dict[str, Any]) -> list[str]:
    """What ``--check`` refuses: failed checksums, unexplained gaps, crossed books."""
    problems = []
    for symbol, s in summary["symbols"].items():
        for key in (
            "checksums_failed",
            "gaps",
            "crossed",
            "book_ticker_mismatches",
            "sequence_gaps",
        ):
            if s.get(key):
                problems.append(f"{symbol}: {key} = {s[key]}")
    return problems
