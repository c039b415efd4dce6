"""Export rows: one schema and one set of units for every source; the books and trades
rebuilt from the rows (read back from NDJSON, CSV and Parquet) equal the replay's."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from feedhandler.files.export import COLUMNS, Rows, iso, parse_channels, write_rows
from feedhandler.files.itch import itch_batches
from feedhandler.files.itch_write import random_session
from hub.decimals import Unit
from hub.errors import BadInput
from hub.events import Event
from hub.times import exchange_midnight_ns, trading_day_from_name
from orderbook_core._pyitch import ItchReplay as PyItchReplay

INTS = ("ts_event", "ts_recv", "seq", "epoch")
SYMBOLS = ("AAPL", "MSFT", "NVDA")


def read_back(path: Path, form: str) -> list[dict[str, Any]]:
    """The rows of an exported file, as NDJSON writes them (ints, strings, None)."""
    if form == "ndjson":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if form == "parquet":
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    with path.open(newline="") as f:
        reader = csv.reader(f)
        assert tuple(next(reader)) == COLUMNS
        out = []
        for values in reader:
            row: dict[str, Any] = {
                c: (v if v != "" else None) for c, v in zip(COLUMNS, values, strict=True)
            }
            for c in INTS:
                row[c] = None if row[c] is None else int(row[c])
            out.append(row)
        return out


Book = dict[str, str]
"""One side of a book: price string -> size string."""


def rebuild(
    rows: Iterable[dict[str, Any]],
) -> tuple[dict[str, tuple[Book, Book]], list[tuple[Any, ...]]]:
    """Books (side -> price string -> size string) and trades from the rows alone."""
    books: dict[str, tuple[Book, Book]] = {}
    trades: list[tuple[Any, ...]] = []
    seqs: dict[str, int] = {}
    for r in rows:
        assert set(r) == set(COLUMNS)
        if r["kind"] == "trade":
            trades.append((r["symbol"], r["ts_event"], r["trade_id"], r["price"], r["size"]))
        elif r["kind"] in ("book_snapshot", "book_delta"):
            assert r["seq"] >= seqs.get(r["symbol"], 0)  # in order, rows of one seq together
            seqs[r["symbol"]] = r["seq"]
            bids, asks = books.setdefault(r["symbol"], ({}, {}))
            side = bids if r["side"] == "bid" else asks
            if Decimal(r["size"]) == 0:
                side.pop(r["price"], None)
            else:
                side[r["price"]] = r["size"]
    return books, trades


@pytest.fixture(scope="module")
def itch_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "12302019.NASDAQ_ITCH50"
    path.write_bytes(random_session(3, 12_000, SYMBOLS, start_ns=34_200 * 10**9, step_ns=10**6))
    return path


def itch_events(path: Path) -> Iterator[Event]:
    for _ts, events in itch_batches(path, SYMBOLS, lambda text: pytest.fail(text)):
        yield from events


def expected_itch(path: Path) -> tuple[dict[str, tuple[Book, Book]], list[tuple[Any, ...]]]:
    """The replay's final books and prints (the pure-Python twin), in decimal strings."""
    twin = PyItchReplay(None, trades=True)
    twin.feed(path.read_bytes())
    twin.finish()
    tick, lot = Unit("0.0001"), Unit("1")
    midnight = exchange_midnight_ns(trading_day_from_name(path.name))
    books = {}
    for s in SYMBOLS:
        bids, asks = twin.book(s).snapshot()
        books[s] = (
            {tick.to_str(p): lot.to_str(n) for p, n, _c in bids},
            {tick.to_str(p): lot.to_str(n) for p, n, _c in asks},
        )
    trades = [
        (s, midnight + at, str(match), tick.to_str(price), lot.to_str(shares))
        for s, at, match, price, shares, _side in twin.take_trades()
    ]
    return books, trades


@pytest.mark.parametrize("form", ["ndjson", "csv", "parquet"])
def test_itch_rows_rebuild_the_replays_books_and_trades(
    itch_file: Path, tmp_path: Path, form: str
) -> None:
    out = tmp_path / f"itch.{form}"
    rows = Rows()
    write_rows(rows.all(itch_events(itch_file)), form, out)
    back = read_back(out, form)
    assert len(back) == rows.rows > 1000
    books, trades = rebuild(back)
    want_books, want_trades = expected_itch(itch_file)
    assert books == want_books and all(b and a for b, a in books.values())
    assert trades == want_trades and len(trades) > 100
    kinds = {r["kind"] for r in back}
    assert kinds == {"trade", "book_snapshot", "book_delta", "bbo", "status"}
    first = back[0]
    assert first["venue"] == "ITCH" and first["canonical"] == first["symbol"]
    assert first["ts_event_iso"].startswith("2019-12-30T14:30:00.")  # 09:30 in New York
    prices = [r["price"] for r in back if r["price"] is not None]
    assert all(len(p.split(".")[1]) == 4 for p in prices)  # 1e-4 dollars, exactly


def test_bbo_rows_follow_the_book(itch_file: Path) -> None:
    rows = list(Rows(parse_channels("book,bbo")).all(itch_events(itch_file)))
    books: dict[str, tuple[Book, Book]] = {}
    for r in rows:
        bids, asks = books.setdefault(r["symbol"], ({}, {}))
        if r["kind"] != "bbo":
            side = bids if r["side"] == "bid" else asks
            if r["size"] == "0":
                side.pop(r["price"], None)
            else:
                side[r["price"]] = r["size"]
            continue
        side = bids if r["side"] == "bid" else asks
        best = max(side, key=Decimal) if r["side"] == "bid" else min(side, key=Decimal)
        assert (r["price"], r["size"]) == (best, side[best])


def test_channels_and_symbols_select_rows(itch_file: Path) -> None:
    rows = list(Rows(parse_channels("trades"), ["msft"]).all(itch_events(itch_file)))
    assert rows and {(r["kind"], r["symbol"]) for r in rows} == {("trade", "MSFT")}
    with pytest.raises(BadInput, match="unknown channel 'quotes'"):
        parse_channels("trades,quotes")


def test_iso_keeps_every_nanosecond() -> None:
    assert iso(1_577_716_200_000_000_123) == "2019-12-30T14:30:00.000000123Z"
    assert iso(0) == "1970-01-01T00:00:00.000000000Z"


def test_units_come_from_the_instrument_and_a_book_without_one_is_refused() -> None:
    from hub.events import BookUpdate, Instrument, Status, Trade

    rows = Rows()
    halted = rows.of(Status("X", "ABC", "halted", "H", 5, 6))  # a status needs no units
    assert [(r["kind"], r["state"], r["reason"], r["ts_recv"]) for r in halted] == [
        ("status", "halted", "H", 6)
    ]
    with pytest.raises(BadInput, match="X ABC: an event came before its instrument"):
        rows.of(BookUpdate("X", "ABC", 1, 7, 7, ((0, 12345, 3),)))
    rows.of(Instrument("X", "ABC", "0.005", "0.1", canonical="ABC-USD"))
    book = rows.of(BookUpdate("X", "ABC", 1, 7, 0, ((0, 12345, 3),)))
    assert [(r["kind"], r["side"], r["price"], r["size"], r["ts_recv"]) for r in book] == [
        ("book_delta", "bid", "61.725", "0.3", None),
        ("bbo", "bid", "61.725", "0.3", None),
        ("bbo", "ask", None, "0.0", None),
    ]
    (trade,) = rows.of(Trade("X", "ABC", 1, "t1", 2, 10**20, 1, 8, 8))
    assert (trade["price"], trade["size"], trade["side"]) == (
        "0.010",
        "10000000000000000000.0",
        "sell",
    )
    assert trade["canonical"] == "ABC-USD" and trade["trade_id"] == "t1"
