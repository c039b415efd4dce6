"""LOBSTER message files (and their orderbook files) into the hub's stream.

Message rows: ``time, type, order id, size, price, direction`` with time in
seconds after midnight, price in 1/10000 dollars and direction 1 (buy limit
order) or -1 (sell limit order). Types: 1 submission, 2 partial
cancellation, 3 deletion, 4 execution of a visible order, 5 execution of a
hidden order, 6 cross trade, 7 trading halt indicator (price -1 halt,
0 quoting, 1 resume). Executing a sell order is a buyer-initiated trade.

The orderbook file has one row per message, the book *after* it: for each
level ``ask price, ask size, bid price, bid size``, empty levels as
9999999999 / -9999999999 with size 0. The replay starts from the first row
(the message file does not contain orders resting before it began), applies
every later message, and compares its top levels with each row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedhandler.files.csvfile import read_rows
from feedhandler.files.pacing import Batch, OnError
from hub.errors import BadInput
from hub.events import BookUpdate, Event, Instrument, Status, Trade
from hub.symbology import equity
from hub.times import exchange_midnight_ns, seconds_ns, trading_day_from_name
from orderbook_core import BookError, L2Book

INT64_MAX = (1 << 63) - 1

EMPTY_ASK, EMPTY_BID = 9999999999, -9999999999
HALT_STATES = {-1: "halted", 0: "quoting", 1: "trading"}


class LobsterError(BadInput):
    """A LOBSTER row is malformed or inconsistent; the message names file and line."""


@dataclass
class LobsterReplay:
    symbol: str
    midnight_ns: int = 0
    venue: str = "LOBSTER"
    book: L2Book = field(default_factory=L2Book)
    seq: int = 0
    trades: int = 0
    messages: int = 0
    rows_checked: int = 0
    mismatches: int = 0
    first_mismatch: int | None = None
    state: str = "trading"
    halts: int = 0

    def start(self, row: list[int], where: str = "orderbook row 1") -> None:
        """Take the book from the first orderbook row (LobsterError if it is not one)."""
        levels = _levels(row, where)
        self.book.clear()
        self.book.apply(levels)

    def apply(self, msg: list[str], where: str) -> list[Event]:
        """Apply one message row; raise LobsterError naming ``where`` if it is bad."""
        try:
            t, kind, oid, size, price, direction = msg[:6]
            ts = self.midnight_ns + seconds_ns(t)
            kind_i, size_i, price_i, dir_i = int(kind), int(size), int(price), int(direction)
        except ValueError as exc:
            raise LobsterError(f"{where}: {exc}") from None
        if not 0 <= ts <= INT64_MAX:
            raise LobsterError(f"{where}: time {t[:30]!r} is out of range")
        self.messages += 1
        if kind_i == 7:
            self.halts += 1
            self.state = HALT_STATES.get(price_i, self.state)
            state = "trading" if self.state == "trading" else "halted"
            return [Status(self.venue, self.symbol, state, self.state, ts, ts)]
        if dir_i not in (1, -1) or not 0 < size_i <= INT64_MAX:
            raise LobsterError(f"{where}: bad direction {direction!r} or size {size[:30]!r}")
        if not 0 < price_i <= INT64_MAX:
            raise LobsterError(f"{where}: price {price[:30]!r} is not in 1..2**63-1")
        side = 0 if dir_i == 1 else 1
        events: list[Event] = []
        if kind_i in (4, 5, 6):
            self.trades += 1
            # Executing a sell (buy) limit order is a buyer- (seller-) initiated trade.
            events.append(
                Trade(
                    self.venue,
                    self.symbol,
                    self.trades,
                    f"{oid}:{self.trades}",
                    price_i,
                    size_i,
                    0 if dir_i == -1 else 1,
                    ts,
                    ts,
                )
            )
        if kind_i in (1, 2, 3, 4):
            current = self.book.size_at(side, price_i)
            new = current + size_i if kind_i == 1 else current - size_i
            if new < 0:
                raise LobsterError(
                    f"{where}: removes {size_i} from a level of {current} at {price_i}"
                )
            if new > INT64_MAX:
                raise LobsterError(f"{where}: the level at {price_i} would pass 2**63-1")
            try:
                self.book.set(side, price_i, new)
            except BookError as exc:
                raise LobsterError(f"{where}: {exc}") from None
            self.seq += 1
            events.append(
                BookUpdate(self.venue, self.symbol, self.seq, ts, ts, ((side, price_i, new),))
            )
        elif kind_i not in (5, 6):
            raise LobsterError(f"{where}: unknown event type {kind!r}")
        return events

    def check(self, row: list[int], line: int) -> bool:
        """Compare our top levels with an orderbook row."""
        self.rows_checked += 1
        levels = len(row) // 4
        ours = _row(self.book, levels)
        if ours == row:
            return True
        self.mismatches += 1
        if self.first_mismatch is None:
            self.first_mismatch = line
        return False

    def summary(self) -> dict[str, Any]:
        bids, asks = self.book.snapshot(5)
        return {
            "symbol": self.symbol,
            "messages": self.messages,
            "book_updates": self.seq,
            "trades": self.trades,
            "halts": self.halts,
            "state": self.state,
            "rows_checked": self.rows_checked,
            "mismatches": self.mismatches,
            "first_mismatch_line": self.first_mismatch,
            "bids": [list(b) for b in bids],
            "asks": [list(a) for a in asks],
        }


def _levels(row: list[int], where: str) -> list[tuple[int, int, int]]:
    if not row or len(row) % 4:
        raise LobsterError(f"{where}: {len(row)} fields, not a multiple of 4")
    if any(not -INT64_MAX <= v <= INT64_MAX for v in row):
        raise LobsterError(f"{where}: a value past int64")
    out = []
    for i in range(0, len(row), 4):
        ask_p, ask_s, bid_p, bid_s = row[i : i + 4]
        for side, price, size, empty in (
            (1, ask_p, ask_s, EMPTY_ASK),
            (0, bid_p, bid_s, EMPTY_BID),
        ):
            if price == empty or size == 0:
                continue
            if price <= 0 or size < 0:
                raise LobsterError(f"{where}: level {price} x {size} is not a price and size")
            out.append((side, price, size))
    return out


def _row(book: L2Book, levels: int) -> list[int]:
    asks, bids = book.depth(1, levels), book.depth(0, levels)
    out = []
    for i in range(levels):
        out += list(asks[i]) if i < len(asks) else [EMPTY_ASK, 0]
        out += list(bids[i]) if i < len(bids) else [EMPTY_BID, 0]
    return out


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty row of a LOBSTER CSV file."""
    for number, row in read_rows(path, csv.reader, LobsterError):
        if row:
            yield number, row


def midnight_from_name(path: Path) -> int:
    """Epoch ns of the file's trading day (New York midnight: LOBSTER's times are NASDAQ
    local time), from LOBSTER's TICKER_YYYY-MM-DD_... names (else 0)."""
    return exchange_midnight_ns(trading_day_from_name(path.name))


def replay_lobster(
    messages: Path, orderbook: Path | None, symbol: str | None = None
) -> LobsterReplay:
    """Replay a message file (checked row by row against its orderbook file when given)."""
    name = symbol or messages.name.split("_", 1)[0]
    replay = LobsterReplay(name, midnight_from_name(messages))
    books = csv_rows(orderbook) if orderbook is not None else None
    for line, msg in csv_rows(messages):
        where = f"{messages.name} line {line}"
        book_row: list[int] | None = None
        if books is not None:
            try:
                book_line, raw = next(books)
                book_row = [int(v) for v in raw]
            except StopIteration:
                raise LobsterError(f"{orderbook}: fewer rows than {messages.name}") from None
            except ValueError as exc:
                raise LobsterError(f"{orderbook} line {book_line}: {exc}") from None
            if line > 1 and (len(book_row) % 4 or not book_row):
                raise LobsterError(f"{orderbook} line {book_line}: not a multiple of 4 fields")
        if line == 1 and book_row is not None:
            # The first row already includes the first message.
            replay.start(book_row, f"{orderbook.name if orderbook else ''} line 1")
            replay.messages += 1
            continue
        replay.apply(msg, where)
        if book_row is not None:
            replay.check(book_row, line)
    return replay


def lobster_instrument(symbol: str) -> Instrument:
    return equity(Instrument("LOBSTER", symbol, "0.0001", "1"))  # prices in 1/10000 dollars


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
