"""NASDAQ TotalView-ITCH 5.0 files (plain or gzip): replay through the book core, or as events.

A file that cannot be read, or bytes the core refuses (its BookError and
ItchFormatError), raise ItchFileError naming the file, with the core's message
and position; the event source instead reports a refused message and goes on
or stops, as the framing allows.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from feedhandler.files.pacing import Batch, OnError
from feedhandler.sync import L2Levels, book_diff
from hub.errors import BadInput
from hub.events import BookUpdate, Event, Instrument, Status, Trade
from hub.symbology import equity
from hub.times import exchange_midnight_ns, trading_day_from_name
from orderbook_core import BookError, ItchReplay, L3Book
from orderbook_core.errors import UnknownStockLocate
from orderbook_core.types import F_LAST, F_SNAPSHOT

log = logging.getLogger("hub.feed")

CHUNK = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"


class ItchFileError(BadInput):
    """An ITCH file cannot be replayed: it cannot be read, or the book core refused its
    bytes. The message is the file, then the cause's; ``offset``, ``msg_type`` and
    ``locate`` are the core error's (None when it had none, or the file was unreadable)."""

    def __init__(
        self,
        path: Path,
        detail: str,
        offset: int | None = None,
        msg_type: str | None = None,
        locate: int | None = None,
    ) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.offset = offset
        self.msg_type = msg_type
        self.locate = locate

    @classmethod
    def of(cls, path: Path, exc: Exception) -> ItchFileError:
        """The error for ``exc`` (the core's, or the file system's) while reading ``path``."""
        if isinstance(exc, OSError) and exc.strerror:
            detail = exc.strerror
        else:
            detail = str(exc.args[0]) if exc.args else type(exc).__name__
        return cls(
            path,
            detail,
            getattr(exc, "offset", None),
            getattr(exc, "msg_type", None),
            getattr(exc, "locate", None),
        )


UNREADABLE = (OSError, EOFError, zlib.error)
"""What reading a missing, unreadable, truncated or corrupt (gzip) file raises."""
REFUSED = (BookError, KeyError, ValueError)
"""What the core raises for ITCH bytes it refuses (the replay's errors carry an offset)."""


def open_itch(path: Path) -> BinaryIO:
    """Open a file for reading, transparently decompressing gzip (ItchFileError if not)."""
    try:
        raw = path.open("rb")
        if raw.read(2) == GZIP_MAGIC:
            raw.close()
            return gzip.open(path, "rb")  # type: ignore[return-value]
        raw.seek(0)
        return raw
    except OSError as exc:
        raise ItchFileError.of(path, exc) from exc


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes, ``CHUNK`` at a time; a read that fails raises ItchFileError."""
    with open_itch(path) as f:
        while True:
            try:
                chunk = f.read(CHUNK)
            except UNREADABLE as exc:
                raise ItchFileError.of(path, exc) from exc
            if not chunk:
                return
            yield chunk


def replay_itch(path: Path, symbols: Iterable[str] | None = None, after: int = -1) -> ItchReplay:
    """Build the books of ``symbols`` (all if None) from the first ``after`` messages (all if < 0).

    Raises ItchFileError (carrying the core's byte offset and message type) on
    unreadable, truncated or corrupt input; a truncated file is only an error
    when the whole file is being replayed.
    """
    replay = ItchReplay(symbols)
    try:
        for chunk in _chunks(path):
            replay.feed(chunk, after)
            if 0 <= after <= replay.messages:
                return replay
        replay.finish()
    except ItchFileError:
        raise
    except REFUSED as exc:
        raise ItchFileError.of(path, exc) from exc
    return replay


def itch_book(path: Path, symbol: str, after: int = -1) -> L3Book:
    """``symbol``'s book after the first ``after`` messages of the file (all if < 0);
    ItchFileError if the file cannot be replayed or never announces the symbol."""
    replay = replay_itch(path, [symbol], after)
    try:
        return replay.book(symbol)
    except KeyError as exc:
        raise ItchFileError.of(path, exc) from exc


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
    yield 0, [equity(Instrument("ITCH", s, "0.0001", "1")) for s in streams.names]
    for data in _chunks(path):
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
