"""NASDAQ TotalView-ITCH 5.0 files (plain or gzip): replay through the book core, or as events."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from feedhandler.files.pacing import Batch, OnError
from feedhandler.sync import L2Levels, book_diff
from hub.events import BookUpdate, Event, Instrument, Status, Trade
from hub.times import exchange_midnight_ns, trading_day_from_name
from orderbook_core import BookError, ItchReplay
from orderbook_core.errors import UnknownStockLocate
from orderbook_core.types import F_LAST, F_SNAPSHOT

log = logging.getLogger("hub.feed")

CHUNK = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"


def open_itch(path: Path) -> BinaryIO:
    """Open a file for reading, transparently decompressing gzip."""
    raw = path.open("rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def replay_itch(path: Path, symbols: Iterable[str] | None = None, after: int = -1) -> ItchReplay:
    """Build the books of ``symbols`` (all if None) from the first ``after`` messages (all if < 0).

    Raises the core's typed errors (with byte offset and message type) on
    truncated or corrupt input; a truncated file is only an error when the
    whole file is being replayed.
    """
    replay = ItchReplay(symbols)
    with open_itch(path) as f:
        while after < 0 or replay.messages < after:
            chunk = f.read(CHUNK)
            if not chunk:
                replay.finish()
                break
            replay.feed(chunk, after)
    return replay


ITCH_BATCH = 4096
"""ITCH messages applied between published updates (each update is one symbol's net change)."""


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
