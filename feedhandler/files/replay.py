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

A book that ends stale for any reason (a gap, a failed checksum, or no snapshot
ever) is named in ``stale_books`` with its reason, its ``dropped`` count says how
many deltas it did not apply (covered by a snapshot, or waiting for one that never
came), and ``--check`` refuses it: a replay cannot fetch the snapshot it needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from feedhandler.files.capture import CaptureError, CaptureLine, read_capture, read_header
from feedhandler.files.pacing import UNREADABLE, Batch, OnError, Pacer, log_bad_record
from feedhandler.frames import MalformedFrame
from feedhandler.venues import VENUES
from feedhandler.venues.base import ParserBase
from hub.events import Event, Trade

EXCHANGES = {
    "KRAKEN": "kraken",
    "BINANCE": "binance",
    "COINBASE": "coinbase",
    "BYBIT": "bybit",
    "BITMEX": "bitmex",
    "OKX": "okx",
    "BITGET": "bitget",
    "BINANCE_DELIVERY": "binance-coinm",  # cryptofeed's name for COIN-M
    "BINANCE_COINM": "binance-coinm",
    "BINANCE_FUTURES": "binance-usdm",  # cryptofeed's name for USD-M
    "BINANCE_USDM": "binance-usdm",
    "KRAKEN_FUTURES": "kraken-futures",
    "DERIBIT": "deribit",
    "BITFINEX": "bitfinex",
    "BITSTAMP": "bitstamp",
    "GEMINI": "gemini",
    "HUOBI": "huobi",
    "HUOBI_SWAP": "huobi-coin-swap",
}
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
            "dropped": st.dropped,
            "live": sync.live,
            **({"stale_reason": sync.stale_reason or "no snapshot"} if not sync.live else {}),
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
        "stale_books": {s: v["stale_reason"] for s, v in symbols.items() if not v["live"]},
        "symbols": symbols,
    }


def check_failures(summary: dict[str, Any]) -> list[str]:
    """What ``--check`` refuses: malformed input, failed checksums, unexplained gaps,
    crossed books, books that end stale (waiting for a snapshot the capture never has)."""
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
            "ticker_mismatches",
            "sequence_gaps",
        ):
            if s.get(key):
                problems.append(f"{symbol}: {key} = {s[key]}")
        if not s.get("live", True):
            problems.append(
                f"{symbol}: book ended stale ({s.get('stale_reason')}), "
                f"{s.get('dropped', 0)} delta(s) not applied"
            )
    return problems


def capture_batches(
    path: Path, parser: ParserBase, on_error: OnError | None = None
) -> Iterator[Batch]:
    """A capture's received frames and REST answers through a venue parser (and its sent
    messages, which say what was subscribed).

    Nothing in the file stops the replay: a frame the parser refuses, or a line
    that cannot be read at all (which may have been a frame, so it counts as a
    malformed one and the venue's rule for unattributable frames applies), is
    reported to ``on_error`` with its line number (logged when None) and skipped."""
    report = on_error or log_bad_record(path)
    stale: list[Event] = []  # statuses of books an unreadable line invalidated

    def bad_line(number: int, why: str, text: str) -> None:
        report(f"{path.name} line {number}: {UNREADABLE}{why}")
        bad = MalformedFrame("json", "unreadable capture line")
        stale.extend(parser.malformed_input(text, bad, 0))

    for line in read_capture(path, bad_line):
        if line.kind == "send":
            parser.on_sent(line.data)
        if line.kind not in ("http", "recv"):
            continue
        before = parser.malformed
        events = _parsed(parser, line)
        if parser.malformed != before:
            report(f"{path.name} line {line.line}: {parser.errors[-1]}")
        if stale:
            events, stale[:] = stale + events, []
        yield line.ts_ns, events
    if stale:
        yield 0, stale


def _parsed(parser: ParserBase, line: CaptureLine) -> list[Event]:
    """The parser's events for one line; an exception it raises anyway (a bug) costs only
    that line and a resync of the books it touched, as in the live runner."""
    try:
        if line.kind == "http":
            return parser.on_http(line.url, line.data, line.ts_ns)
        return parser.on_frame(line.raw or line.data, line.ts_ns)
    except Exception as exc:
        return parser.internal_error(line.raw or line.data, exc, line.ts_ns)
