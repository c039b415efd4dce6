"""The hub's normalised events as rows of one schema, and the NDJSON, CSV and Parquet files
``hub export`` writes them to (docs/export.md).

Every source's events carry integer ticks and lots and the stream's ``Instrument`` says
what one tick and one lot are; a row carries the decimal strings (exact: ``Unit.to_str``),
so a price reads the same from an ITCH file (1e-4 dollars), a Databento file (1e-9) or a
venue capture. One event becomes rows:

- a ``BookUpdate``: one row per level change, ``book_snapshot`` when the update is a
  snapshot (F_SNAPSHOT), else ``book_delta``; size is the level's new absolute size, "0"
  deleting it. A snapshot is, as on the bus, the changes from the book held before to the
  fresh one, so applying every book row in order rebuilds the book (an update without
  changes gives no row);
- a ``Trade``: one ``trade`` row (side ``buy``, ``sell`` or ``none``: the aggressor's);
- after a book update that moved the best bid or ask: two ``bbo`` rows (``bid`` then
  ``ask``; price empty and size "0" for an empty side), as ``bus.output.TopTracker``
  decides them for the live stream;
- a ``Status``: one ``status`` row with ``state`` and ``reason``.

``Instrument`` events give no row: they carry the units and the canonical id.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from bus.output import TopTracker
from feedhandler.files.sources import event_time
from hub.decimals import Unit
from hub.errors import BadInput
from hub.events import TRADE_SIDES, BookUpdate, Event, Instrument, Status, Trade
from orderbook_core import L2Book
from orderbook_core.types import F_SNAPSHOT

COLUMNS = (
    "ts_event",
    "ts_event_iso",
    "ts_recv",
    "venue",
    "symbol",
    "canonical",
    "kind",
    "side",
    "price",
    "size",
    "trade_id",
    "seq",
    "epoch",
    "state",
    "reason",
)
KINDS = ("trade", "book_snapshot", "book_delta", "bbo", "status")
CHANNELS = {
    "trades": ("trade",),
    "book": ("book_snapshot", "book_delta"),
    "bbo": ("bbo",),
    "status": ("status",),
}
"""``--channels`` names (the protocol's) and the row kinds each selects."""
FORMATS = ("ndjson", "csv", "parquet")
BOOK_SIDES = ("bid", "ask")

Row = dict[str, Any]


def iso(ns: int) -> str:
    """Epoch nanoseconds as ISO 8601 UTC with all nine digits: 2019-12-30T14:30:00.000000123Z."""
    seconds, frac = divmod(ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def parse_channels(text: str) -> frozenset[str]:
    """``trades,book`` -> the row kinds to write; BadInput naming an unknown channel."""
    kinds: set[str] = set()
    for name in (x.strip() for x in text.split(",") if x.strip()):
        if name not in CHANNELS:
            raise BadInput(f"unknown channel {name!r}: choose from {', '.join(CHANNELS)}")
        kinds.update(CHANNELS[name])
    if not kinds:
        raise BadInput("--channels names no channel")
    return frozenset(kinds)


class _Stream:
    __slots__ = ("book", "canonical", "lot", "tick")

    def __init__(self, instrument: Instrument) -> None:
        self.tick = Unit(instrument.tick_size)
        self.lot = Unit(instrument.lot_size)
        self.canonical = instrument.canonical
        self.book = L2Book()


class Rows:
    """Turns events into rows, keeping per stream its units and (for ``bbo``) its book."""

    def __init__(self, kinds: Iterable[str] = KINDS, symbols: Iterable[str] | None = None) -> None:
        self.kinds = frozenset(kinds)
        self.symbols = {s.upper() for s in symbols} if symbols else None
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.tops = TopTracker()
        self.events = 0
        self.rows = 0

    def _wanted(self, symbol: str, stream: _Stream) -> bool:
        return self.symbols is None or bool(
            {symbol.upper(), stream.canonical.upper()} & self.symbols
        )

    def of(self, event: Event) -> list[Row]:
        """The rows of one event (none for an instrument, or one not selected)."""
        if isinstance(event, Instrument):
            self.streams[event.venue, event.symbol] = _Stream(event)
            return []
        if not isinstance(event, BookUpdate | Trade | Status):
            return []
        stream = self.streams.get((event.venue, event.symbol))
        if stream is None and isinstance(event, Status):  # needs no units (nor keeps them)
            stream = _Stream(Instrument(event.venue, event.symbol, "1", "1"))
        if stream is None:
            raise BadInput(
                f"{event.venue} {event.symbol}: an event came before its instrument "
                "(its tick and lot sizes are unknown)"
            )
        self.events += 1
        if not self._wanted(event.symbol, stream):
            return []
        out = self._rows(event, stream)
        self.rows += len(out)
        return out

    def _base(self, e: BookUpdate | Trade | Status, stream: _Stream, kind: str) -> Row:
        at = event_time(e)
        return {
            "ts_event": at,
            "ts_event_iso": iso(at),
            "ts_recv": e.ts_recv or None,
            "venue": e.venue,
            "symbol": e.symbol,
            "canonical": stream.canonical or None,
            "kind": kind,
            "side": None,
            "price": None,
            "size": None,
            "trade_id": None,
            "seq": getattr(e, "seq", None),
            "epoch": getattr(e, "epoch", None),
            "state": None,
            "reason": None,
        }

    def _rows(self, e: BookUpdate | Trade | Status, stream: _Stream) -> list[Row]:
        kinds = self.kinds
        if isinstance(e, Trade):
            if "trade" not in kinds:
                return []
            row = self._base(e, stream, "trade")
            row["side"] = TRADE_SIDES[e.side]
            row["price"] = stream.tick.to_str(e.price)
            row["size"] = stream.lot.to_str(e.size)
            row["trade_id"] = e.trade_id
            return [row]
        if isinstance(e, Status):
            if "status" not in kinds:
                return []
            row = self._base(e, stream, "status")
            row["state"], row["reason"] = e.state, e.reason
            return [row]
        out: list[Row] = []
        kind = "book_snapshot" if e.flags & F_SNAPSHOT else "book_delta"
        if kind in kinds:
            for side, price, size in e.changes:
                row = self._base(e, stream, kind)
                row["side"] = BOOK_SIDES[side]
                row["price"] = stream.tick.to_str(price)
                row["size"] = stream.lot.to_str(size)
                out.append(row)
        if "bbo" in kinds:
            stream.book.apply(e.changes)
            top = self.tops.after(e, stream.book.best_bid(), stream.book.best_ask())
            if top is not None:
                sides = ((top.bid_price, top.bid_size), (top.ask_price, top.ask_size))
                for name, (price, size) in zip(BOOK_SIDES, sides, strict=True):
                    row = self._base(e, stream, "bbo")
                    row["side"] = name
                    row["price"] = stream.tick.to_str(price) if size else None
                    row["size"] = stream.lot.to_str(size)
                    out.append(row)
        return out

    def all(self, events: Iterable[Event]) -> Iterator[Row]:
        for event in events:
            yield from self.of(event)


def write_ndjson(rows: Iterable[Row], out: IO[bytes]) -> None:
    """One JSON object per line, every column present (null where a row has no value)."""
    for row in rows:
        out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


def write_csv(rows: Iterable[Row], out: IO[str]) -> None:
    """A header of COLUMNS, then one line per row; an empty field where there is no value."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])


PARQUET_BATCH = 65_536


def parquet_schema() -> Any:
    import pyarrow as pa

    text, dictionary = pa.string(), pa.dictionary(pa.int32(), pa.string())
    types = {
        "ts_event": pa.int64(),
        "ts_event_iso": text,
        "ts_recv": pa.int64(),
        "venue": dictionary,
        "symbol": dictionary,
        "canonical": dictionary,
        "kind": dictionary,
        "side": dictionary,
        "price": text,
        "size": text,
        "trade_id": text,
        "seq": pa.int64(),
        "epoch": pa.int64(),
        "state": dictionary,
        "reason": text,
    }
    return pa.schema([pa.field(c, types[c]) for c in COLUMNS])


def write_parquet(rows: Iterable[Row], path: Path) -> None:
    """Typed columns (int64 times, seq and epoch; dictionary-encoded names; decimal strings),
    written ``PARQUET_BATCH`` rows at a time."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInput(
            "--format parquet needs pyarrow: pip install 'mdhub[export]' (or pyarrow)"
        ) from None
    schema = parquet_schema()
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, schema))


def write_rows(rows: Iterable[Row], form: str, path: Path) -> None:
    """Write ``rows`` to ``path`` in ``form`` (one of FORMATS); "-" is stdout (not Parquet)."""
    import sys

    if form == "parquet":
        if str(path) == "-":
            raise BadInput("--format parquet needs a file (--out FILE), not stdout")
        write_parquet(rows, path)
    elif form == "csv":
        if str(path) == "-":
            write_csv(rows, sys.stdout)
        else:
            with path.open("w", newline="") as f:
                write_csv(rows, f)
    elif str(path) == "-":
        write_ndjson(rows, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        with path.open("wb") as f:
            write_ndjson(rows, f)
