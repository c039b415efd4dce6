"""File replays as event sources for the publishing path, at a chosen speed.

Each ``*_batches`` function yields ``(ts_ns, events)``: the events one input
record produced and the venue time used to pace them. ``Pacer`` turns venue
time into wall-clock waits for ``--speed``: ``max`` (no waiting), ``1``
(real time) or any multiple (``10`` = ten times faster). Bad records are
counted and logged through ``on_error`` with the file position and the
replay goes on; nothing already applied is touched, because every replay
checks a record before it changes a book.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from feedhandler.capture import CaptureLine, read_capture
from feedhandler.databento import PRICE_DECIMALS, DatabentoError, MboReplay, read_records
from feedhandler.frames import MalformedFrame
from feedhandler.itch_file import CHUNK, open_itch
from feedhandler.lobster import LobsterError, LobsterReplay, csv_rows, midnight_from_name
from feedhandler.sync import L2Levels, book_diff
from feedhandler.venues.base import ParserBase, decimals_unit
from hub.events import BookUpdate, Event, Instrument, Status, Trade
from hub.times import exchange_midnight_ns, trading_day_from_name
from orderbook_core import BookError, ItchReplay
from orderbook_core.errors import UnknownStockLocate
from orderbook_core.types import F_LAST, F_SNAPSHOT

log = logging.getLogger("hub.feed")
Batch = tuple[int, list[Event]]
OnError = Callable[[str], None]
UNREADABLE = "unreadable: "
"""How a capture line that could not be read at all is reported (after its line number)."""
ITCH_BATCH = 4096
"""ITCH messages applied between published updates (each update is one symbol's net change)."""


def parse_speed(text: str) -> float:
    """``max`` -> 0 (no pacing); otherwise a positive multiple of real time."""
    if text == "max":
        return 0.0
    try:
        factor = float(text.removeprefix("x"))
    except ValueError:
        factor = -1.0
    if not factor > 0:
        raise ValueError(f"--speed must be 'max' or a positive number, got {text!r}")
    return factor


class Pacer:
    """Waits so that records stamped ``ts_ns`` leave at ``speed`` times their original pace."""

    def __init__(self, speed: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.factor = parse_speed(speed)
        self.clock = clock
        self._start = 0.0
        self._first: int | None = None

    def delay(self, ts_ns: int) -> float:
        """Seconds to wait before the record stamped ``ts_ns`` (0 at max speed)."""
        if self.factor == 0 or ts_ns <= 0:
            return 0.0
        if self._first is None:
            self._first, self._start = ts_ns, self.clock()
        due = self._start + (ts_ns - self._first) / 1e9 / self.factor
        return max(0.0, due - self.clock())


def capture_batches(
    path: Path, parser: ParserBase, on_error: OnError | None = None
) -> Iterator[Batch]:
    """A capture's received frames and REST answers through a venue parser.

    Nothing in the file stops the replay: a frame the parser refuses, or a line
    that cannot be read at all (which may have been a frame, so it counts as a
    malformed one and the venue's rule for unattributable frames applies), is
    reported to ``on_error`` with its line number (logged when None) and skipped."""
    report = on_error or _log_bad_record(path)
    stale: list[Event] = []  # statuses of books an unreadable line invalidated

    def bad_line(number: int, why: str, text: str) -> None:
        report(f"{path.name} line {number}: {UNREADABLE}{why}")
        bad = MalformedFrame("json", "unreadable capture line")
        stale.extend(parser.malformed_input(text, bad, 0))

    for line in read_capture(path, bad_line):
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
        return parser.on_frame(line.data, line.ts_ns)
    except Exception as exc:
        return parser.internal_error(line.data, exc, line.ts_ns)


def _log_bad_record(path: Path) -> OnError:
    count = [0]

    def report(text: str) -> None:
        count[0] += 1
        if count[0] <= 20 or count[0] % 1000 == 0:
            log.warning("bad replay record skipped", extra={"file": str(path), "why": text[:200]})

    return report


def lobster_instrument(symbol: str) -> Instrument:
    return Instrument("LOBSTER", symbol, "0.0001", "1")  # prices in 1/10000 dollars


def lobster_batches(messages: Path, symbol: str, on_error: OnError) -> Iterator[Batch]:
    """A LOBSTER message file (the book starts empty: LOBSTER files start at the open).
    A bad row is reported and skipped; a file the CSV reader cannot read on ends there."""
    replay = LobsterReplay(symbol, midnight_from_name(messages))
    yield 0, [lobster_instrument(symbol)]
    try:
        for number, row in csv_rows(messages):
            try:
                events = replay.apply(row, f"{messages.name} line {number}")
            except LobsterError as exc:
                on_error(str(exc))
                continue
            yield (events[0].ts_event if events else 0), events  # type: ignore[union-attr]
    except LobsterError as exc:
        on_error(str(exc))


def databento_batches(path: Path, on_error: OnError) -> Iterator[Batch]:
    """Databento MBO records (CSV or DBN); instruments appear with their first update.
    A bad record is reported and skipped; a file that cannot be read on ends there."""
    replay = MboReplay()
    tick = str(decimals_unit(PRICE_DECIMALS).text)
    seen: set[str] = set()
    try:
        for where, record in read_records(path, on_error):
            try:
                events = replay.apply(record, where)
            except DatabentoError as exc:
                on_error(str(exc))
                continue
            out: list[Event] = []
            for e in events:
                if e.symbol not in seen:
                    seen.add(e.symbol)
                    out.append(Instrument(replay.venue, e.symbol, tick, "1"))
                out.append(e)
            yield record.ts_recv, out
    except DatabentoError as exc:
        on_error(str(exc))


def itch_batches(path: Path, symbols: Iterable[str], on_error: OnError) -> Iterator[Batch]:
    """An ITCH 5.0 file's trades and books for ``symbols``: every print (E, printable C,
    P, Q) as a Trade, and one net book update per symbol per ``ITCH_BATCH`` messages after
    that batch's trades (the books between batches are exact; the steps inside one are
    conflated)."""
    midnight = exchange_midnight_ns(trading_day_from_name(path.name))
    if not midnight:
        log.warning(
            "no trading day in the ITCH file name (MMDDYYYY.NASDAQ_ITCH50 or YYYY-MM-DD): "
            "event times stay nanoseconds since midnight",
            extra={"file": str(path)},
        )
    streams = _ItchStreams(list(symbols), midnight)
    replay = streams.replay
    yield 0, [Instrument("ITCH", s, "0.0001", "1") for s in streams.names]
    with open_itch(path) as f:
        data = f.read(CHUNK)
        while data:
            while True:  # apply the chunk one batch at a time, then read the next one
                try:
                    done = replay.feed(data, replay.messages + ITCH_BATCH)
                except UnknownStockLocate as exc:
                    # Framing is intact: the message was skipped and the stream goes on.
                    on_error(f"{path.name}: {exc}")
                    data = b""
                    yield midnight + replay.timestamp, streams.events()
                    continue
                except BookError as exc:
                    # A corrupt stream cannot be resynchronised: publish the book as of the
                    # last good message and stop.
                    on_error(f"{path.name}: {exc}")
                    yield midnight + replay.timestamp, streams.events()
                    return
                data = b""
                if not done:
                    break
                yield midnight + replay.timestamp, streams.events()
            data = f.read(CHUNK)
    try:
        replay.finish()
    except BookError as exc:
        on_error(f"{path.name}: {exc}")


class _ItchStreams:
    """The hub streams of an ITCH replay: what consumers were last told, per symbol."""

    def __init__(self, names: list[str], midnight_ns: int) -> None:
        self.names = names
        self.midnight = midnight_ns
        self.replay = ItchReplay(names, trades=True, orders=True)
        self.levels: dict[str, L2Levels] = {s: ([], []) for s in names}
        self.seqs = dict.fromkeys(names, 0)
        self.trade_seqs = dict.fromkeys(names, 0)
        self.states: dict[str, str | None] = dict.fromkeys(names)

    def events(self) -> list[Event]:
        """The prints since the last call, then each changed trading state and net book."""
        out: list[Event] = []
        ts = self.midnight + self.replay.timestamp
        for symbol, at, match, price, shares, side in self.replay.take_trades():
            seq = self.trade_seqs[symbol] = self.trade_seqs[symbol] + 1
            at += self.midnight
            out.append(Trade("ITCH", symbol, seq, str(match), price, shares, side, at, at))
        for symbol in self.names:
            state = self.replay.trading_state(symbol)
            if state != self.states[symbol] and state is not None:
                self.states[symbol] = state
                kind = "trading" if state == "T" else "halted"
                out.append(Status("ITCH", symbol, kind, state, ts, ts))
            try:
                book = self.replay.book(symbol)
            except KeyError:
                continue  # not in the file yet
            bids, asks = book.snapshot()
            now = ([(p, size) for p, size, _n in bids], [(p, size) for p, size, _n in asks])
            changes = book_diff(self.levels[symbol], now)
            orders = tuple(d[:5] for d in book.take_deltas())
            if changes or orders:
                self.levels[symbol] = now
                seq = self.seqs[symbol] = self.seqs[symbol] + 1
                flags = F_SNAPSHOT | F_LAST if seq == 1 else F_LAST
                out.append(BookUpdate("ITCH", symbol, seq, ts, ts, changes, flags, orders))
        return out
