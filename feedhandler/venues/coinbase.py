"""Coinbase: the Advanced Trade feed (``l2_data``, ``market_trades``, ``ticker``,
``heartbeats``) and the Exchange feed (``level2`` snapshot + ``l2update``,
``match``, ``ticker``). Frames tell the two apart (``channel`` vs ``type``).

Advanced Trade numbers every message of a connection with ``sequence_num``;
a missing number cannot be pinned on one product, so every book of that
connection is invalidated and must be resubscribed. The Exchange ``level2``
channel has no sequence at all: its books are checked by the crossed-book
rule and against the ticker. Public trades carry the maker's side; the
aggressor is the other one. Tickers are compared with the book's top when
they arrive (the channels are not mutually ordered, so "most of the time").
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    iso_time,
    row,
    sided_levels,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.coinbase_auth import CoinbaseCredentials, redact
from hub.decimals import Unit, parse_decimal
from hub.events import Event, LevelChange, Trade
from orderbook_core import coinbase_l2, dict_levels

VENUE = "COINBASE"
SIZE_DECIMALS = 8
MAX_DECIMALS = 18


class CoinbaseParser(ParserBase):
    """Frames and REST bodies in, normalized events out (both Coinbase feeds).

    ``feed`` only chooses what ``subscribe``/``recover`` send: ``advanced`` (Advanced
    Trade) or ``exchange`` (the Exchange feed's public ``level2_batch``). With
    ``credentials`` the Exchange feed's subscriptions and REST requests are signed."""

    venue = VENUE
    chained = False

    def __init__(
        self, feed: str = "advanced", credentials: CoinbaseCredentials | None = None
    ) -> None:
        super().__init__()
        self.credentials = credentials
        if feed not in ("advanced", "exchange"):
            raise ValueError(f"Coinbase feed must be 'advanced' or 'exchange', got {feed!r}")
        self.feed = feed
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.sequence = -1
        self.sequence_gaps = 0
        self.ticker_checks: dict[str, list[int]] = {}  # product -> [agree, disagree]
        self._ticked: set[str] = set()

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units.get(symbol) or DEFAULT_UNITS

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        agree, disagree = self.ticker_checks.get(symbol, [0, 0])
        return {
            "ticker_agrees": agree,
            "ticker_disagrees": disagree,
            "sequence_gaps": self.sequence_gaps,
        }

    def _list(self, product: str) -> None:
        """A spot product's canonical listing: ``BTC-USD`` is already canonical."""
        base, dash, quote = product.partition("-")
        if dash and "-" not in quote:
            self._list_spot(VENUE, product, base, quote)

    def _book(self, product: str) -> BookSync:
        self._touch(product)
        self._list(product)
        sync = self.books.get(product)
        if sync is None:
            sync = self.books[product] = BookSync(VENUE, product)
            sync.sink = self._emitted
        return sync

    def _requests(self, kind: str, symbols: list[str], channels: tuple[str, ...]) -> list[str]:
        if self.feed == "exchange":
            msg = {"type": kind, "product_ids": symbols, "channels": list(channels)}
            if self.credentials is not None:
                msg |= self.credentials.subscribe_fields()
            return [json.dumps(msg)]
        return [json.dumps({"type": kind, "product_ids": symbols, "channel": c}) for c in channels]

    def rest_headers(self, url: str) -> dict[str, str]:
        if self.credentials is None or self.feed != "exchange":
            return {}
        return self.credentials.rest_headers(url)

    def redact(self, message: str) -> str:
        return redact(message)

    def instrument_urls(self, rest: str) -> list[str]:
        """The product list: each product's price precision, fetched before connecting."""
        if self.feed == "exchange":
            return [f"{rest}/products"]
        return [f"{rest}/api/v3/brokerage/market/products"]

    def subscribe(self, symbols: list[str]) -> list[str]:
        if self.feed == "exchange":
            return self._requests("subscribe", symbols, ("level2_batch", "matches", "ticker"))
        return self._requests(
            "subscribe", symbols, ("heartbeats", "level2", "market_trades", "ticker")
        )

    def recover(self, symbols: list[str]) -> list[str]:
        """Resubscribing the book channel brings a fresh snapshot."""
        book = ("level2_batch",) if self.feed == "exchange" else ("level2",)
        return self._requests("unsubscribe", symbols, book) + self._requests(
            "subscribe", symbols, book
        )

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        """Product lists give each product's price precision (from its quote increment)."""
        data = self._json(body)
        products = field(data, "products") if isinstance(data, dict) else data
        found = []
        for p in as_list(products, "products"):
            p = as_dict(p, "product")
            product = as_str(p.get("product_id") or field(p, "id"), "product id")
            increment = as_str(field(p, "quote_increment"), "quote_increment")
            try:
                decimals = max(0, parse_decimal(increment)[1])
            except ValueError:
                raise MalformedFrame("number", f"quote_increment {increment[:30]!r}") from None
            if decimals > MAX_DECIMALS:
                raise MalformedFrame("range", f"quote_increment {increment[:30]!r}")
            found.append((product, decimals))
        for product, decimals in found:
            self._list(product)
            if product not in self.books:  # a book already in integer units keeps them
                self.units[product] = (decimals_unit(decimals), decimals_unit(SIZE_DECIMALS))
        return []

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = coinbase_l2(text, self.units, DEFAULT_UNITS, SIDES)  # Advanced Trade books
        if scan is not None:
            seq, events = scan
            if self._scanned(events):
                return self._l2_scanned(text, seq, events, ts_recv)
        msg = as_dict(self._json(text), "a frame")
        if "channel" in msg:
            return self._advanced(text, msg, ts_recv)
        return self._exchange(msg, ts_recv)

    def _scanned(self, events: list[tuple[str, bool, Any, int]]) -> bool:
        """Whether a scanned ``l2_data`` frame reads as the ordinary path would take it:
        every update is of a product that has a book by then (a snapshot makes one)."""
        books = set(self.books)
        for product, snapshot, _levels, _ts in events:
            if snapshot:
                books.add(product)
            elif product not in books:
                return False
        return True

    def _l2_scanned(
        self, text: str, seq: int, events: list[tuple[str, bool, Any, int]], ts_recv: int
    ) -> list[Event]:
        """``_advanced`` for an ``l2_data`` frame the compiled scanner read."""
        out = self._sequence(seq, ts_recv)
        for product, snapshot, levels, ts in events:
            try:
                out += self._l2_levels(product, snapshot, levels, ts, ts_recv)
            except MalformedFrame as exc:
                out += self.malformed_input(text, exc, ts_recv)
        return out

    def _levels(self, product: str, rows: list[Any]) -> tuple[LevelChange, ...]:
        """``[side, price, size]`` rows as level changes (sides bid/buy/offer/sell)."""
        tick, lot = self.units_for(product)
        return sided_levels(tick, lot, rows, SIDES, "level", "size")

    def _pinned(self, exc: MalformedFrame, product: str, snapshot: bool) -> MalformedFrame:
        """A bad snapshot, or a bad update of a product we keep a book for, is that book's
        problem; an update of a product without a book cannot be pinned on any (so every
        book resyncs)."""
        return exc.on(product) if snapshot or product in self.books else exc

    def _known(self, product: str) -> None:
        """An update for a product with no book: it cannot be pinned on a book we keep."""
        if product not in self.books:
            raise MalformedFrame("symbol", f"book update for {product[:20]!r}, which has no book")

    # --- Advanced Trade ----------------------------------------------------------------

    def _advanced(self, text: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        """The sequence number first (a frame that arrived keeps the chain), then each event;
        a bad event is refused on its own, after the good ones before it are applied."""
        seq = count(field(msg, "sequence_num"), "sequence_num")
        channel = as_str(msg["channel"], "channel")
        events = as_list(field(msg, "events"), "events")
        out = self._sequence(seq, ts_recv)
        if channel not in ADVANCED_CHANNELS:
            bad = MalformedFrame("shape", f"unknown channel {channel[:20]!r}")
            return out + self.malformed_input(text, bad, ts_recv)
        for event in events:
            try:
                if channel == "l2_data":
                    out += self._l2_data(event, ts_recv)
                elif channel == "market_trades":
                    out += self._market_trades(event, ts_recv)
                elif channel == "ticker":
                    for t in as_list(as_dict(event, "event").get("tickers", []), "tickers"):
                        bid, ask = field(t, "best_bid"), field(t, "best_ask")
                        self._check_ticker(field(t, "product_id"), bid, ask)
            except MalformedFrame as exc:
                out += self.malformed_input(text, exc, ts_recv)
        return out

    def _sequence(self, seq: int, ts_recv: int) -> list[Event]:
        """A frame's ``sequence_num``: one that does not follow on stales every book."""
        out: list[Event] = []
        if self.sequence >= 0 and seq != self.sequence + 1:
            self.sequence_gaps += 1
            for sync in self.books.values():
                out += sync.invalidate("sequence gap", ts_recv)
        self.sequence = seq
        return out

    def _l2_data(self, event: Any, ts_recv: int) -> list[Event]:
        product = as_str(field(event, "product_id"), "product_id")
        kind = field(event, "type")
        try:
            if kind not in ("snapshot", "update"):
                raise MalformedFrame("shape", f"l2_data event type {kind!r:.20}")
            if kind == "update":
                self._known(product)
            updates = as_list(field(event, "updates"), "updates")
            levels, ts = self._plain_updates(product, updates) or self._updates(product, updates)
        except MalformedFrame as exc:
            raise self._pinned(exc, product, kind == "snapshot") from None
        return self._l2_levels(product, kind == "snapshot", levels, ts, ts_recv)

    def _l2_levels(
        self, product: str, snapshot: bool, levels: tuple[LevelChange, ...], ts: int, ts_recv: int
    ) -> list[Event]:
        if snapshot:
            return self._book(product).snapshot(Snapshot(levels, ts_event=ts), ts_recv)
        return self._book(product).delta(Delta(levels, ts_event=ts), ts_recv)

    def _updates(self, product: str, updates: list[Any]) -> tuple[tuple[LevelChange, ...], int]:
        """``l2_data`` updates as level changes and the latest ``event_time``, every field
        read (and refused) through feedhandler.frames."""
        updates = [as_dict(u, "update") for u in updates]
        rows = [
            (field(u, "side"), field(u, "price_level"), field(u, "new_quantity")) for u in updates
        ]
        ts = max((iso_time(field(u, "event_time"), "event_time") for u in updates), default=0)
        return self._levels(product, rows), ts

    def _plain_updates(
        self, product: str, updates: list[Any]
    ) -> tuple[tuple[LevelChange, ...], int] | None:
        """``_updates`` by the compiled reader alone, for updates of plain fields (all of
        them in the captures); None if any is not, and ``_updates`` reads the frame."""
        tick, lot = self.units_for(product)
        fields = ("side", "price_level", "new_quantity", "event_time")
        return dict_levels(updates, SIDES, *fields, tick.scale, lot.scale)

    def _market_trades(self, event: Any, ts_recv: int) -> list[Event]:
        try:
            if field(event, "type") != "update":
                return []  # the snapshot: recent trades from before we subscribed
            trades = [
                self._trade(
                    field(t, "product_id"),
                    field(t, "trade_id"),
                    field(t, "price"),
                    field(t, "size"),
                    field(t, "side"),
                    field(t, "time"),
                )
                for t in as_list(event.get("trades", []), "trades")
            ]
        except MalformedFrame as exc:
            raise exc.on() from None
        return [self._sequenced(t, ts_recv) for t in trades]

    # --- Exchange ----------------------------------------------------------------------

    def _exchange(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        kind = msg.get("type")
        if kind in ("subscriptions", "heartbeat", "status", "last_match"):
            return []
        if kind == "error":
            raise MalformedFrame("venue", f"venue error: {str(msg.get('message'))[:80]}", ())
        if kind not in ("snapshot", "l2update", "match", "ticker"):
            raise MalformedFrame("shape", f"unknown message type {kind!r:.20}")
        product = as_str(field(msg, "product_id"), "product_id")
        if kind == "match":
            try:
                return [self._sequenced(self._match(msg), ts_recv)]
            except MalformedFrame as exc:
                raise exc.on() from None
        if kind == "ticker":
            # The first ticker after subscribing describes the last trade's moment, not the
            # current book (seen in the 2021 capture: it disagrees for 7 of 10 products).
            try:
                if product in self._ticked:
                    self._check_ticker(product, msg.get("best_bid"), msg.get("best_ask"))
            except MalformedFrame as exc:
                raise exc.on() from None
            self._ticked.add(product)
            return []
        try:
            if kind == "snapshot":
                bids = as_list(field(msg, "bids"), "bids")
                rows = [("buy", *row(r, 2, "bid")[:2]) for r in bids]
                asks = as_list(field(msg, "asks"), "asks")
                rows += [("sell", *row(r, 2, "ask")[:2]) for r in asks]
                snap = Snapshot(self._levels(product, rows))
                return self._book(product).snapshot(snap, ts_recv)
            self._known(product)
            changes = self._levels(product, as_list(field(msg, "changes"), "changes"))
            delta = Delta(changes, ts_event=iso_time(msg.get("time"), "time"))
        except MalformedFrame as exc:
            raise self._pinned(exc, product, kind == "snapshot") from None
        return self._book(product).delta(delta, ts_recv)

    # --- shared ------------------------------------------------------------------------

    def _trade(
        self, product: Any, trade_id: Any, price: Any, size: Any, maker_side: Any, time: Any
    ) -> Trade:
        """A public trade, not yet numbered (``_sequenced`` gives it its seq)."""
        product = as_str(product, "product_id")
        tick, lot = self.units_for(product)
        if not isinstance(trade_id, str | int) or isinstance(trade_id, bool):
            raise MalformedFrame("shape", "trade_id must be a string or an integer")
        side = as_str(maker_side, "side").lower()
        if side not in ("buy", "sell"):
            raise MalformedFrame("shape", f"trade side {side[:10]!r}")
        return Trade(
            VENUE,
            product,
            0,
            str(trade_id),
            units(tick, price, "price", positive=True),
            units(lot, size, "size", positive=True),
            1 if side == "buy" else 0,  # the maker bought: a seller took it
            iso_time(time, "time"),
            0,
        )

    def _sequenced(self, trade: Trade, ts_recv: int) -> Trade:
        return replace(trade, seq=self._trade_seq(trade.symbol), ts_recv=ts_recv)

    def _match(self, msg: dict[str, Any]) -> Trade:
        """An Exchange-feed ``match`` message as a public trade (not yet numbered)."""
        return self._trade(
            msg.get("product_id"),
            field(msg, "trade_id"),
            field(msg, "price"),
            field(msg, "size"),
            field(msg, "side"),
            field(msg, "time"),
        )

    def _check_ticker(self, product: Any, best_bid: Any, best_ask: Any) -> None:
        sync = self.books.get(product) if isinstance(product, str) else None
        if sync is None or not sync.live or not best_bid or not best_ask:
            return
        tick, _lot = self.units_for(product)
        quoted = (units(tick, best_bid, "best_bid"), units(tick, best_ask, "best_ask"))
        bid, ask = sync.book.best_bid(), sync.book.best_ask()
        top = (bid[0] if bid else None, ask[0] if ask else None)
        counts = self.ticker_checks.setdefault(product, [0, 0])
        counts[0 if top == quoted else 1] += 1


ADVANCED_CHANNELS = frozenset(
    {
        "l2_data",
        "market_trades",
        "ticker",
        "ticker_batch",
        "heartbeats",
        "subscriptions",
        "candles",
        "status",
        "user",
        "futures_balance_summary",
    }
)


SIDES = {"bid": 0, "buy": 0, "offer": 1, "ask": 1, "sell": 1}
"""Book sides as both feeds name them."""
DEFAULT_UNITS = (decimals_unit(SIZE_DECIMALS), decimals_unit(SIZE_DECIMALS))
"""A product's units before (or without) its REST product data."""
