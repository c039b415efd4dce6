"""Kraken books deeper than 10 and pair metadata from REST, on synthetic captures.

No recorded capture subscribes deeper than 10 levels, so ``write_capture`` writes one
in the capture format (feedhandler/files/capture.py): an ``AssetPairs`` REST answer,
the subscription sent (``depth`` 1000), trades before the first book, a snapshot of
more than 10 levels a side, then updates that delete levels inside the top 10, each
with the checksum Kraken documents, computed here from the text (top 10 asks then
bids, price and quantity with the point and leading zeros removed, CRC32). A
parser that cut the book to 10 levels would fail them: the 11th level moves up
after a delete and is not resent at depth 1000.
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from feedhandler.files.capture import CaptureWriter, read_capture
from feedhandler.files.replay import check_failures, replay_capture
from feedhandler.venues.kraken import KrakenParser
from hub.events import Trade
from tests.conftest import ROOT
from tests.feedhandler.fuzzing import Case, capture_items, fuzzed
from tests.feedhandler.venues.capture_runner import check_capture

LEVELS = 25
UPDATES = 40
Text = tuple[str, str]


def text_crc(asks: list[Text], bids: list[Text]) -> int:
    """Kraken's checksum from the level texts, best first (as the venue documents it)."""

    def digits(text: str) -> str:
        return text.replace(".", "").lstrip("0")

    return zlib.crc32("".join(digits(p) + digits(q) for p, q in asks[:10] + bids[:10]).encode())


class TextBook:
    """The venue's book as text: price -> quantity per side, ``pd``/``qd`` decimals shown."""

    def __init__(self, mid: int, tick: Decimal, pd: int, qd: int, rng: random.Random) -> None:
        self.tick, self.pd, self.qd, self.rng = tick, pd, qd, rng
        self.sides: list[dict[int, int]] = [{}, {}]  # side -> price ticks -> qty units
        for i in range(LEVELS):
            self.sides[0][mid - 1 - 2 * i] = rng.randint(1, 10**9)
            self.sides[1][mid + 1 + 2 * i] = rng.randint(1, 10**9)

    def price(self, ticks: int) -> str:
        return f"{ticks * self.tick:.{self.pd}f}"

    def qty(self, units: int) -> str:
        return f"{Decimal(units).scaleb(-8):.{self.qd}f}"

    def levels(self, side: int) -> list[Text]:
        prices = sorted(self.sides[side], reverse=side == 0)
        return [(self.price(p), self.qty(self.sides[side][p])) for p in prices]

    def crc(self) -> int:
        return text_crc(self.levels(1), self.levels(0))

    def step(self, n: int) -> tuple[int, int, int]:
        """One change inside the top 10 (so the checksum covers it): every third deletes a
        level, the others insert one or resize one; returns (side, price ticks, qty units;
        0 deletes)."""
        side = n % 2
        book = self.sides[side]
        top = sorted(book, reverse=side == 0)[:10]
        if n % 3 == 0:
            price, qty = self.rng.choice(top), 0
            del book[price]
        elif n % 3 == 1:
            free = [p for p in range(min(top), max(top)) if p not in book]
            price, qty = self.rng.choice(free), self.rng.randint(1, 10**9)
            book[price] = qty
        else:
            price, qty = self.rng.choice(top), self.rng.randint(1, 10**9)
            book[price] = qty
        return side, price, qty


def v1_frames(book: TextBook, pair: str) -> list[str]:
    """Snapshot then updates of a v1 ``book-1000`` channel; a trade after the 20th."""
    name = "book-1000"
    snap = {"as": [[p, q, "1693415330.000001"] for p, q in book.levels(1)]}
    snap["bs"] = [[p, q, "1693415330.000001"] for p, q in book.levels(0)]
    frames = [json.dumps([336, snap, name, pair])]
    for n in range(UPDATES):
        side, price, qty = book.step(n)
        level = [book.price(price), book.qty(qty), f"1693415331.{n:06d}"]
        part = {"ba"[side]: [level], "c": str(book.crc())}
        frames.append(json.dumps([336, part, name, pair]))
        if n == 20:
            frames.append(v1_trade(book.price(price), pair))
    return frames


def v1_trade(price: str, pair: str) -> str:
    return json.dumps(
        [337, [[price, "0.00100000", "1693415330.123456", "b", "l", ""]], "trade", pair]
    )


def v2_frames(book: TextBook, symbol: str) -> list[str]:
    """Snapshot then updates of a v2 ``book`` at depth 1000 (JSON numbers, checksums)."""

    def rows(levels: list[Text]) -> list[dict[str, float]]:
        return [{"price": float(p), "qty": float(q)} for p, q in levels]

    snap: dict[str, Any] = {"symbol": symbol, "bids": rows(book.levels(0))}
    snap["asks"] = rows(book.levels(1))
    snap["checksum"] = book.crc()
    frames = [json.dumps({"channel": "book", "type": "snapshot", "data": [snap]})]
    for n in range(UPDATES):
        side, price, qty = book.step(n)
        item: dict[str, Any] = {"symbol": symbol, "bids": [], "asks": []}
        item[("bids", "asks")[side]] = rows([(book.price(price), book.qty(qty))])
        item.update(checksum=book.crc(), timestamp=f"2023-08-30T17:00:{n:02d}.000000Z")
        frames.append(json.dumps({"channel": "book", "type": "update", "data": [item]}))
        if n == 20:
            frames.append(v2_trade(float(book.price(price)), symbol))
    return frames


def v2_trade(price: float, symbol: str) -> str:
    trade = {"symbol": symbol, "side": "sell", "price": price, "qty": 12.5, "trade_id": 7}
    trade.update(ord_type="market", timestamp="2023-08-30T17:00:00.000000Z")
    return json.dumps({"channel": "trade", "type": "update", "data": [trade]})


ASSET_PAIRS = {
    "error": [],
    "result": {
        "XXBTZUSD": {
            "altname": "XBTUSD",
            "wsname": "XBT/USD",
            "pair_decimals": 1,
            "lot_decimals": 8,
        },
        "XDGUSD": {"altname": "XDGUSD", "wsname": "XDG/USD", "pair_decimals": 7, "lot_decimals": 8},
        "XBTUSD.d": {"altname": "XBTUSD.d", "pair_decimals": 1, "lot_decimals": 8},
    },
}


INSTRUMENT = {
    "channel": "instrument",
    "type": "snapshot",
    "data": {
        "assets": [],
        "pairs": [
            {"symbol": "DOGE/USD", "base": "DOGE", "quote": "USD", "status": "online"}
            | {"price_precision": 7, "qty_precision": 8, "price_increment": 1e-07}
        ],
    },
}


def write_capture(
    path: Path, version: int, subscribe: bool = True, rest: bool = True, instrument: bool = False
) -> TextBook:
    """A Kraken capture as ``hub capture`` writes it; returns the venue's final book. v1:
    XBT/USD, prices printed with 5 decimals on a 0.1 tick (as Kraken's v1 does); v2:
    DOGE/USD (``XDG/USD`` in REST), with ``instrument`` its v2 instrument channel first."""
    rng = random.Random(17 + version)
    writer = CaptureWriter(path, "KRAKEN", {"synthetic": True})
    conn = "KRAKEN.ws.1"
    ts = time.time_ns()
    if rest:
        url = "https://api.kraken.com/0/public/AssetPairs"
        writer.http("KRAKEN.http", url, json.dumps(ASSET_PAIRS), ts)
    if version == 1:
        addr, pair = "wss://ws.kraken.com", "XBT/USD"
        book = TextBook(271200, Decimal("0.1"), 5, 8, rng)
        sub = {
            "event": "subscribe",
            "pair": [pair],
            "subscription": {"name": "book", "depth": 1000},
        }
        trade_sub = {"event": "subscribe", "pair": [pair], "subscription": {"name": "trade"}}
        early = [v1_trade("27119.90000", pair), v1_trade("27120.10000", pair)]
        frames = v1_frames(book, pair)
    else:
        addr, pair = "wss://ws.kraken.com/v2", "DOGE/USD"
        book = TextBook(712000, Decimal("0.0000001"), 7, 8, rng)
        sub = {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": [pair], "depth": 1000},
        }
        trade_sub = {"method": "subscribe", "params": {"channel": "trade", "symbol": [pair]}}
        early = [v2_trade(0.0711999, pair), v2_trade(0.0712001, pair)]
        if instrument:
            early.insert(0, json.dumps(INSTRUMENT))
        frames = v2_frames(book, pair)
    writer.connect(conn, addr)
    if subscribe:
        writer.send(conn, addr, json.dumps(sub))
    writer.send(conn, addr, json.dumps(trade_sub))
    for n, frame in enumerate(early + frames):
        writer.recv(conn, frame, ts + n + 1)
    writer.close()
    return book


@pytest.mark.parametrize(("version", "symbol"), [(1, "XBT/USD"), (2, "DOGE/USD")])
def test_a_depth_1000_book_keeps_its_levels_and_every_checksum_verifies(
    tmp_path: Path, version: int, symbol: str
) -> None:
    path = tmp_path / f"kraken-v{version}-book1000.jsonl.zst"
    venue = write_capture(path, version)
    summary = replay_capture(path)
    assert summary["venue"] == "kraken" and summary["malformed"] == 0
    s = summary["symbols"][symbol]
    assert (s["checksums_verified"], s["checksums_failed"], s["gaps"], s["crossed"]) == (
        UPDATES + (version == 2),  # v2 snapshots carry one too
        0,
        0,
        0,
    )
    assert s["live"] and s["trades"] == 3 and summary["stale_books"] == {}
    assert check_failures(summary) == []
    parser = KrakenParser()
    for line in read_capture(path):
        if line.kind == "send":
            parser.on_sent(line.data)
        elif line.kind == "http":
            parser.on_http(line.url, line.data, line.ts_ns)
        elif line.kind == "recv":
            parser.on_frame(line.data, line.ts_ns)
    sync = parser.books[symbol]
    assert sync.depth == 1000
    # The units are the pair's ticks and 1e-8 lots, as the venue book's integers.
    want = tuple(sorted(venue.sides[side].items(), reverse=side == 0) for side in (0, 1))
    assert sync.book.snapshot() == want
    assert sync.book.level_count(0) > 10 and sync.book.level_count(1) > 10
    assert parser.listings[symbol].canonical == symbol.replace("XBT", "BTC").replace("/", "-")


def test_trades_before_the_first_book_take_the_asset_pairs_precision(tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    write_capture(path, 1)
    parser = KrakenParser()
    trades = []
    for line in read_capture(path):
        if line.kind == "http":
            parser.on_http(line.url, line.data, line.ts_ns)
        elif line.kind == "recv":
            trades += [e for e in parser.on_frame(line.data, line.ts_ns) if isinstance(e, Trade)]
    assert parser.precisions["XBT/USD"] == (1, 8) and parser.shifts["XBT/USD"] == (4, 0)
    assert parser.precisions["DOGE/USD"] == (7, 8) and "XBTUSD.d" not in parser.precisions
    assert [(t.price, t.size, t.side) for t in trades[:2]] == [
        (271199, 100000, 0),
        (271201, 100000, 0),
    ]
    assert parser.units_for("XBT/USD")[0].text == "0.1"
    assert parser.malformed == 0


def test_without_asset_pairs_early_trades_are_refused_by_name(tmp_path: Path) -> None:
    """v1: the book's own text gives the precision, but only once it comes; v2 needs the
    precision from metadata for books too (its numbers carry none): the instrument
    channel gives it as well as AssetPairs."""
    path = tmp_path / "v1-norest.jsonl"
    write_capture(path, 1, rest=False)
    summary = replay_capture(path)
    assert summary["malformed"] == 2 and summary["malformed_reasons"] == {"symbol": 2}
    assert "trade for XBT/USD before its precision" in summary["problems"][0]
    s = summary["symbols"]["XBT/USD"]
    assert (s["trades"], s["checksums_verified"], s["live"]) == (1, UPDATES, True)
    path = tmp_path / "v2-instrument.jsonl"
    write_capture(path, 2, rest=False, instrument=True)
    summary = replay_capture(path)
    s = summary["symbols"]["DOGE/USD"]
    assert (summary["malformed"], s["trades"], s["checksums_verified"]) == (0, 3, UPDATES + 1)


def test_a_book_cut_to_ten_levels_fails_and_the_replay_says_so(tmp_path: Path) -> None:
    """Without the subscription (v2 frames never name their depth) the book is cut to 10:
    the first delete inside the top 10 fails its checksum, the book waits for a snapshot
    the capture never has, and the summary and --check say so."""
    path = tmp_path / "v2-unsubscribed.jsonl"
    write_capture(path, 2, subscribe=False)
    summary = replay_capture(path)
    s = summary["symbols"]["DOGE/USD"]
    assert (s["checksums_failed"], s["live"], s["stale_reason"]) == (1, False, "checksum")
    assert summary["stale_books"] == {"DOGE/USD": "checksum"}
    assert s["dropped"] == UPDATES - 1  # the failed update applied; every later one waited
    failures = check_failures(summary)
    assert "DOGE/USD: checksums_failed = 1" in failures
    assert any(f.startswith("DOGE/USD: book ended stale (checksum)") for f in failures)
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", "capture", str(path), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "book ended stale (checksum)" in out.stderr


def test_depth_from_the_acknowledgement_and_the_v1_channel_name(tmp_path: Path) -> None:
    parser = KrakenParser()
    ack: dict[str, Any] = {"method": "subscribe", "success": True}
    ack["result"] = {"channel": "book", "depth": 500, "snapshot": True, "symbol": "ETH/USD"}
    parser.on_frame(json.dumps(ack), 0)
    status: dict[str, Any] = {"event": "subscriptionStatus", "status": "subscribed"}
    status["pair"] = "XBT/EUR"
    status.update(channelName="book-25", subscription={"name": "book", "depth": 25})
    parser.on_frame(json.dumps(status), 0)
    assert parser.depths == {"ETH/USD": 500, "XBT/EUR": 25}
    path = tmp_path / "v1.jsonl"
    write_capture(path, 1, subscribe=False)  # the channel name alone says book-1000
    summary = replay_capture(path)
    s = summary["symbols"]["XBT/USD"]
    assert (s["checksums_verified"], s["checksums_failed"], summary["malformed"]) == (UPDATES, 0, 0)


def test_check_command_on_the_synthetic_capture(tmp_path: Path) -> None:
    path = tmp_path / "kraken-v1-book1000.jsonl.zst"
    write_capture(path, 1)
    out = check_capture(path)
    s = json.loads(out.stdout)["symbols"]["XBT/USD"]
    assert (s["checksums_verified"], s["trades"]) == (UPDATES, 3)


@functools.cache
def fuzz_case(version: int) -> Case:
    path = Path(tempfile.mkdtemp()) / f"kraken-v{version}-book1000.jsonl"
    write_capture(path, version)
    subscription = next(x.data for x in read_capture(path) if x.kind == "send")

    def make() -> KrakenParser:
        parser = KrakenParser()
        parser.on_sent(subscription)
        return parser

    items = capture_items(path)
    shutil.rmtree(path.parent)
    # Input 0, the AssetPairs answer, sets the units everything after is read in: like
    # Binance's exchangeInfo it is not mutated.
    return Case(f"kraken-v{version}-book1000", items, make, 1, len(items))


@pytest.mark.parametrize("version", [1, 2])
@fuzzed
def test_mutated_frames_never_raise_and_deep_books_stay_exact_or_stale(
    version: int, data: st.DataObject
) -> None:
    """The harness of test_fuzz_venues on the synthetic depth-1000 captures (AssetPairs
    answer, early trades, book frames)."""
    fuzz_case(version).fuzz(data)
