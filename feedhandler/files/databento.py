"""Databento MBO (market by order), from CSV as Databento writes it or from DBN files.

Actions, with Databento's semantics: A adds an order; C cancels ``size`` of
it (all of it or part); M modifies it (a new price or a larger size sends it
to the back of its queue, a smaller size at the same price keeps its place;
an M for an order not in the book adds it); R clears the instrument's book;
T (the aggressor's trade) and F (the resting order's fill) do not change the
book — the C or M that follows does; N carries no book change. Records of
one event end with the F_LAST flag (128); the book update for the event is
published then. Prices are fixed-point integers of 1e-9 (pretty CSV prices
are converted exactly).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedhandler.files.csvfile import read_rows
from feedhandler.files.pacing import Batch, OnError
from feedhandler.venues.base import decimals_unit
from hub.decimals import parse_decimal
from hub.errors import BadInput
from hub.events import BUY, NO_AGGRESSOR, SELL, BookUpdate, Event, Instrument, LevelChange, Trade
from hub.symbology import equity
from orderbook_core import BookError, L3Book

F_LAST = 128
PRICE_DECIMALS = 9
INT64_MAX = (1 << 63) - 1


class DatabentoError(BadInput):
    """A record is malformed or inconsistent; the message names the record."""


_AGGRESSOR = {"B": BUY, "A": SELL, "N": NO_AGGRESSOR}
"""Databento's side letters; on a trade the side is the aggressor's, N when there is none."""


@dataclass(frozen=True, slots=True)
class MboRecord:
    ts_recv: int
    ts_event: int
    instrument_id: int
    action: str
    side: str
    price: int
    size: int
    order_id: int
    flags: int
    sequence: int


@dataclass
class InstrumentBook:
    book: L3Book = field(default_factory=lambda: L3Book(emit_deltas=True, allow_cross=True))
    seq: int = 0
    trades: int = 0
    pending: dict[tuple[int, int], int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class MboReplay:
    """Per-instrument L3 books from MBO records."""

    def __init__(self, venue: str = "DATABENTO", symbols: dict[int, str] | None = None) -> None:
        self.venue = venue
        self.symbols = symbols or {}
        self.books: dict[int, InstrumentBook] = {}
        self.records = 0

    def _name(self, instrument_id: int) -> str:
        return self.symbols.get(instrument_id, str(instrument_id))

    def apply(self, r: MboRecord, where: str) -> list[Event]:
        """Apply one record; raise DatabentoError naming ``where`` if the book refuses it."""
        self.records += 1
        ib = self.books.setdefault(r.instrument_id, InstrumentBook())
        ib.counts[r.action] = ib.counts.get(r.action, 0) + 1
        out: list[Event] = []
        if r.side not in _AGGRESSOR:
            raise DatabentoError(f"{where}: unknown side {r.side!r} (B, A or N)")
        if r.side == "N" and r.action in ("A", "M"):
            raise DatabentoError(f"{where}: action {r.action} needs side B or A, got N")
        for name in ("ts_recv", "ts_event", "price", "size", "order_id"):
            value = getattr(r, name)
            if not -INT64_MAX <= value <= INT64_MAX:
                raise DatabentoError(f"{where}: {name} {value} does not fit int64")
        side = 0 if r.side == "B" else 1
        try:
            if r.action == "A":
                ib.book.add(r.order_id, side, r.price, r.size)
                self._touch(ib, side, r.price)
            elif r.action == "C":
                order = ib.book.order(r.order_id)
                if order is None:
                    raise DatabentoError(f"{where}: cancel of unknown order {r.order_id}")
                ib.book.reduce(r.order_id, r.size)
                self._touch(ib, order[0], order[1])
            elif r.action == "M":
                self._modify(ib, r, side)
            elif r.action == "R":
                for s in (0, 1):
                    for price, _size, _n in ib.book.depth(s):
                        ib.pending[s, price] = 0
                ib.book.clear()
            elif r.action == "T":
                ib.trades += 1
                out.append(
                    Trade(
                        self.venue,
                        self._name(r.instrument_id),
                        ib.trades,
                        f"{r.sequence}:{r.order_id}",
                        r.price,
                        r.size,
                        _AGGRESSOR[r.side],
                        r.ts_event,
                        r.ts_recv,
                    )
                )
            elif r.action not in ("T", "F", "N"):
                raise DatabentoError(f"{where}: unknown action {r.action!r}")
        except BookError as exc:
            raise DatabentoError(f"{where}: {exc}") from None
        if r.flags & F_LAST and ib.pending:
            changes: tuple[LevelChange, ...] = tuple(
                (s, p, self._level(ib, s, p)) for (s, p) in ib.pending
            )
            ib.pending.clear()
            orders = tuple(d[:5] for d in ib.book.take_deltas())
            ib.seq += 1
            out.append(
                BookUpdate(
                    self.venue,
                    self._name(r.instrument_id),
                    ib.seq,
                    r.ts_event,
                    r.ts_recv,
                    changes,
                    orders=orders,
                )
            )
        return out

    def _modify(self, ib: InstrumentBook, r: MboRecord, side: int) -> None:
        order = ib.book.order(r.order_id)
        if order is None:
            ib.book.add(r.order_id, side, r.price, r.size)
            self._touch(ib, side, r.price)
            return
        old_side, old_price, old_size = order
        if r.price == old_price and r.size < old_size:
            ib.book.reduce(r.order_id, old_size - r.size)  # keeps its place in the queue
        elif r.price != old_price or r.size > old_size:
            ib.book.replace(r.order_id, r.order_id, r.price, r.size)
        self._touch(ib, old_side, old_price)
        self._touch(ib, old_side, r.price)

    @staticmethod
    def _touch(ib: InstrumentBook, side: int, price: int) -> None:
        ib.pending[side, price] = 0

    @staticmethod
    def _level(ib: InstrumentBook, side: int, price: int) -> int:
        for p, size, _n in ib.book.depth(side):
            if p == price:
                return size
        return 0

    def summary(self) -> dict[str, Any]:
        out = {}
        for instrument, ib in sorted(self.books.items()):
            bids, asks = ib.book.snapshot(5)
            out[self._name(instrument)] = {
                "records": sum(ib.counts.values()),
                "actions": dict(sorted(ib.counts.items())),
                "book_updates": ib.seq,
                "trades": ib.trades,
                "orders": ib.book.order_count(),
                "bids": [list(b) for b in bids],
                "asks": [list(a) for a in asks],
            }
        return {"venue": self.venue, "records": self.records, "instruments": out}


def _price(text: str) -> int:
    if "." not in text:
        return int(text)
    mantissa, exp = parse_decimal(text)
    if exp > PRICE_DECIMALS:
        raise ValueError(f"price {text!r} has more than {PRICE_DECIMALS} decimals")
    return int(mantissa * 10 ** (PRICE_DECIMALS - exp))


def read_csv(
    path: Path, on_error: Callable[[str], None] | None = None
) -> Iterator[tuple[str, MboRecord]]:
    """Records of a Databento MBO CSV; a bad row raises DatabentoError, or with ``on_error``
    is reported there and skipped."""
    for number, row in read_rows(path, csv.DictReader, DatabentoError):
        where = f"{path.name} line {number}"
        try:
            yield (
                where,
                MboRecord(
                    int(row["ts_recv"]),
                    int(row["ts_event"]),
                    int(row["instrument_id"]),
                    row["action"],
                    row["side"],
                    _price(row["price"]),
                    int(row["size"]),
                    int(row["order_id"]),
                    int(row["flags"]),
                    int(row["sequence"]),
                ),
            )
        except (KeyError, ValueError, TypeError) as exc:  # TypeError: a row short of fields
            if on_error is None:
                raise DatabentoError(f"{where}: {exc}") from None
            on_error(f"{where}: {exc}")


def read_dbn(path: Path) -> Iterator[tuple[str, MboRecord]]:
    import databento_dbn
    import zstandard

    try:
        data = path.read_bytes()
        if data[:4] == b"\x28\xb5\x2f\xfd":  # zstd-compressed DBN
            data = zstandard.ZstdDecompressor().stream_reader(data).read()
    except OSError as exc:
        raise DatabentoError(f"{path}: {exc.strerror or exc}") from exc
    except zstandard.ZstdError as exc:
        raise DatabentoError(f"{path.name}: not readable as zstd ({exc})") from exc
    decoder = databento_dbn.DBNDecoder()
    try:
        decoder.write(data)
        records = decoder.decode()
    except Exception as exc:  # the decoder's own errors (e.g. a truncated or corrupt file)
        raise DatabentoError(f"{path.name}: not a readable DBN file ({exc})") from None
    except BaseException as exc:
        # Some damaged records make the Rust decoder panic; pyo3 raises that as a
        # PanicException, which derives from BaseException so ``except Exception`` misses it.
        if type(exc).__name__ != "PanicException":
            raise
        first = str(exc).splitlines()[0] if str(exc) else "decoder panicked"
        raise DatabentoError(f"{path.name}: not a readable DBN file ({first})") from None
    index = 0
    for rec in records:
        if not isinstance(rec, databento_dbn.MBOMsg):
            continue
        index += 1
        yield (
            f"{path.name} record {index}",
            MboRecord(
                rec.ts_recv,
                rec.ts_event,
                rec.instrument_id,
                str(rec.action),
                str(rec.side),
                rec.price,
                rec.size,
                rec.order_id,
                int(rec.flags),
                rec.sequence,
            ),
        )


def read_records(
    path: Path, on_error: Callable[[str], None] | None = None
) -> Iterable[tuple[str, MboRecord]]:
    """DBN (.dbn, .dbn.zst) or CSV records, by file name."""
    if path.suffix in (".dbn", ".zst") or path.name.endswith(".dbn.zst"):
        return read_dbn(path)
    return read_csv(path, on_error)


def replay_databento(path: Path, symbols: dict[int, str] | None = None) -> MboReplay:
    replay = MboReplay(symbols=symbols)
    for where, record in read_records(path):
        replay.apply(record, where)
    return replay


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
                    out.append(equity(Instrument(replay.venue, e.symbol, tick, "1")))
                out.append(e)
            yield record.ts_recv, out
    except DatabentoError as exc:
        on_error(str(exc))
