"""Replay a recorded capture through the same parser + sync engine + books as live.

``replay_capture`` feeds every received frame to the venue's sans-I/O parser
and every REST line to it as the answer to the request the recorder made at
that moment, paced at ``speed`` (``max`` or a multiple of real time), and
returns a summary per symbol: the counts a user checks a feed by, plus the
final top 5 levels as decimal strings.

Bad input never stops a replay: a frame the parser refuses and a line that
cannot be read are skipped, counted (``malformed``, ``bad_lines``) and listed
with their line numbers (the first ``PROBLEMS_LISTED`` in ``problems``); a book
such a frame could have changed is left stale (``live: false``), since a
capture cannot be asked for a fresh snapshot. ``--check`` refuses them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from feedhandler.capture import CaptureError, read_header
from feedhandler.sources import UNREADABLE, Pacer, capture_batches
from feedhandler.venues import VENUES
from hub.events import Trade

EXCHANGES = {"KRAKEN": "kraken", "BINANCE": "binance", "COINBASE": "coinbase"}
PROBLEMS_LISTED = 10
log = logging.getLogger("hub.feed")


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
    problems: list[str] = []

    def on_error(text: str) -> None:
        problems.append(text)

    for ts, events in capture_batches(path, parser, on_error):
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
            "live": sync.live,
            **({"stale_reason": sync.stale_reason} if not sync.live else {}),
            **parser.extra_stats(symbol),
            "bids": [[tick.to_str(p), lot.to_str(s)] for p, s in bids],
            "asks": [[tick.to_str(p), lot.to_str(s)] for p, s in asks],
        }
    bad_lines = sum(1 for p in problems if f": {UNREADABLE}" in p)
    if problems:
        log.warning(
            "%s: %d bad input(s) skipped, first: %s",
            path,
            len(problems),
            "; ".join(problems[:3]),
        )
    return {
        "venue": venue,
        "file": str(path),
        "malformed": parser.malformed,
        "bad_lines": bad_lines,
        "malformed_reasons": dict(sorted(parser.reasons.items())),
        "problems": problems[:PROBLEMS_LISTED],
        "symbols": symbols,
    }


def check_failures(summary: dict[str, Any]) -> list[str]:
    """What ``--check`` refuses: malformed input, failed checksums, unexplained gaps,
    crossed books."""
    problems = []
    if summary.get("malformed"):
        first = summary["problems"][0] if summary.get("problems") else ""
        problems.append(f"{summary['malformed']} malformed input(s), first: {first}")
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
