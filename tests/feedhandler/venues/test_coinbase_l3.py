"""Coinbase ``full`` channel: order-level messages synced with the level-3 REST snapshot give
exactly the venue's L2 book; a lost message is a gap that a fresh snapshot repairs."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from feedhandler.venues import coinbase_l3
from feedhandler.venues.coinbase_l3 import CoinbaseL3Parser
from hub.events import BookUpdate, Event, Status, Trade
from orderbook_core import L2Book

REST = "https://api.exchange.coinbase.com"
PRODUCT = "BTC-USD"


class Venue:
    """An independent model of the venue: resting orders and the message stream."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.orders: dict[str, tuple[str, int, int]] = {}  # id -> side, price cents, size sats
        self.sequence = 1000
        self.next_id = 0
        self.matches = 0

    def _msg(self, kind: str, **fields: Any) -> str:
        self.sequence += 1
        body = {"type": kind, "product_id": PRODUCT, "sequence": self.sequence}
        body["time"] = "2026-11-22T10:00:00.000000Z"
        return json.dumps(body | fields)

    def step(self) -> list[str]:
        r = self.rng.random()
        if r < 0.45 or len(self.orders) < 5:
            self.next_id += 1
            oid = f"order-{self.next_id}"
            side = self.rng.choice(["buy", "sell"])
            price = (
                self.rng.randint(9900, 9999) if side == "buy" else self.rng.randint(10001, 10100)
            )
            size = self.rng.randint(1, 500) * 1_000_000
            self.orders[oid] = (side, price, size)
            return [
                self._msg("received", order_id=oid, side=side, order_type="limit"),
                self._msg(
                    "open", order_id=oid, side=side, price=cents(price), remaining_size=sats(size)
                ),
            ]
        oid = self.rng.choice(sorted(self.orders))
        side, price, size = self.orders[oid]
        if r < 0.65:
            del self.orders[oid]
            return [self._msg("done", order_id=oid, reason="canceled", remaining_size=sats(size))]
        if r < 0.8:
            new = self.rng.randint(1, size)
            self.orders[oid] = (side, price, new)
            return [self._msg("change", order_id=oid, new_size=sats(new), old_size=sats(size))]
        take = self.rng.randint(1, size)
        self.matches += 1
        out = [
            self._msg(
                "match",
                trade_id=self.matches,
                maker_order_id=oid,
                taker_order_id="taker",
                side=side,
                size=sats(take),
                price=cents(price),
            )
        ]
        if take == size:
            del self.orders[oid]
            out.append(self._msg("done", order_id=oid, reason="filled", remaining_size="0"))
        else:
            self.orders[oid] = (side, price, size - take)
        return out

    def snapshot(self) -> str:
        rows = {"buy": [], "sell": []}  # type: dict[str, list[list[str]]]
        for oid, (side, price, size) in self.orders.items():
            rows[side].append([cents(price), sats(size), oid])
        return json.dumps({"sequence": self.sequence, "bids": rows["buy"], "asks": rows["sell"]})

    def l2(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        book = L2Book()
        for side, price, size in self.orders.values():
            s = 0 if side == "buy" else 1
            book.set(s, price, book.size_at(s, price) + size)
        return book.snapshot()


def cents(v: int) -> str:
    return f"{v // 100}.{v % 100:02d}"


def sats(v: int) -> str:
    return f"{v // 100_000_000}.{v % 100_000_000:08d}"


def parser_with_units() -> CoinbaseL3Parser:
    p = CoinbaseL3Parser()
    p.on_http(f"{REST}/products", json.dumps([{"id": PRODUCT, "quote_increment": "0.01"}]), 0)
    return p


class Downstream:
    def __init__(self) -> None:
        self.book = L2Book()
        self.seq = 0
        self.trades = 0
        self.states: list[str] = []

    def take(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, BookUpdate):
                assert e.seq == self.seq + 1
                self.seq = e.seq
                self.book.apply(e.changes)
            elif isinstance(e, Trade):
                self.trades += 1
            elif isinstance(e, Status):
                self.states.append(e.state)


def test_buffered_messages_and_snapshot_give_the_venues_book() -> None:
    venue, parser, down = Venue(1), parser_with_units(), Downstream()
    url = parser.snapshot_urls(REST, [PRODUCT])[0]
    assert url == f"{REST}/products/BTC-USD/book?level=3"
    for _ in range(200):  # before we subscribed: the venue's history
        venue.step()
    early = [m for _ in range(30) for m in venue.step()]
    snapshot = venue.snapshot()  # taken while messages keep coming
    late = [m for _ in range(30) for m in venue.step()]
    for m in early + late:
        assert parser.on_frame(m, 1) == []  # buffered until the snapshot
    down.take(parser.on_http(url, snapshot, 2))
    assert down.book.snapshot() == venue.l2()
    for _ in range(3000):
        for m in venue.step():
            down.take(parser.on_frame(m, 3))
    assert down.book.snapshot() == venue.l2() == parser.books[PRODUCT].book.snapshot()
    assert parser.books[PRODUCT].stats.gaps == 0 and parser.malformed == 0
    assert down.trades == parser.trades[PRODUCT] > 100


def test_a_lost_message_is_a_gap_and_a_fresh_snapshot_repairs_the_book() -> None:
    venue, parser, down = Venue(2), parser_with_units(), Downstream()
    for _ in range(100):
        venue.step()
    url = parser.snapshot_urls(REST, [PRODUCT])[0]
    down.take(parser.on_http(url, venue.snapshot(), 0))
    lost = False
    for i in range(1500):
        for m in venue.step():
            if i == 700 and not lost:
                lost = True
                continue  # the network ate this one
            down.take(parser.on_frame(m, 0))
        if i == 900:
            assert not parser.books[PRODUCT].live  # stale since the gap, buffering
            down.take(parser.on_http(url, venue.snapshot(), 0))
    assert parser.books[PRODUCT].stats.gaps == 1
    assert down.states == ["stale", "resynced"]
    assert down.book.snapshot() == venue.l2()


def test_the_wait_for_a_snapshot_is_bounded_and_an_overrun_shows_as_a_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coinbase_l3, "BUFFER_LIMIT", 50)
    venue, parser, down = Venue(4), parser_with_units(), Downstream()
    for _ in range(100):
        venue.step()
    url = parser.snapshot_urls(REST, [PRODUCT])[0]
    old = venue.snapshot()  # a slow REST answer: 300 messages arrive before it does
    for _ in range(150):
        for m in venue.step():
            assert parser.on_frame(m, 0) == []
    assert len(parser.l3[PRODUCT].buffer) == 50  # the oldest left
    down.take(parser.on_http(url, old, 0))
    assert parser.books[PRODUCT].stats.gaps == 1 and not parser.books[PRODUCT].live
    for _ in range(20):
        for m in venue.step():
            down.take(parser.on_frame(m, 0))
    down.take(parser.on_http(url, venue.snapshot(), 0))
    for _ in range(200):
        for m in venue.step():
            down.take(parser.on_frame(m, 0))
    assert down.book.snapshot() == venue.l2() == parser.books[PRODUCT].book.snapshot()
    assert len(parser.l3[PRODUCT].buffer) == 0


def test_bad_frames_are_counted_and_leave_the_book_alone() -> None:
    venue, parser, down = Venue(3), parser_with_units(), Downstream()
    down.take(parser.on_http(parser.snapshot_urls(REST, [PRODUCT])[0], venue.snapshot(), 0))
    for _ in range(100):
        for m in venue.step():
            down.take(parser.on_frame(m, 0))
    before = down.book.snapshot()
    assert parser.on_frame('{"type":"open","product_id":"BTC-USD"}', 0) == []
    assert parser.on_frame("not json", 0) == []
    bad_rest = parser.on_http(parser.snapshot_urls(REST, [PRODUCT])[0], '{"oops":1}', 0)
    assert bad_rest == [] and parser.malformed == 3
    assert (
        "REST answer from https://api.exchange.coinbase.com/products/BTC-USD/book"
        in (parser.errors[-1])
    )
    assert down.book.snapshot() == before == venue.l2()
