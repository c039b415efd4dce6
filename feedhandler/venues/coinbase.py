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
from typing import Any

from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.coinbase_auth import CoinbaseCredentials, redact
from hub.decimals import Unit, parse_decimal
from hub.events import Event, LevelChange, Trade
from hub.times import iso_ns

VENUE = "COINBASE"
SIZE_DECIMALS = 8


class CoinbaseParser(ParserBase):
    """Frames and REST bodies in, normalized events out (both Coinbase feeds).

    ``feed`` only chooses what ``subscribe``/``recover`` send: ``advanced`` (Advanced
    Trade) or ``exchange`` (the Exchange feed's public ``level2_batch``). With
    ``credentials`` the Exchange feed's subscriptions and REST requests are signed."""

    venue = VENUE

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
        return self.units.get(symbol) or (
            decimals_unit(SIZE_DECIMALS),
            decimals_unit(SIZE_DECIMALS),
        )

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        agree, disagree = self.ticker_checks.get(symbol, [0, 0])
        return {
            "ticker_agrees": agree,
            "ticker_disagrees": disagree,
            "sequence_gaps": self.sequence_gaps,
        }

    def _book(self, product: str) -> BookSync:
        sync = self.books.get(product)
        if sync is None:
            sync = self.books[product] = BookSync(VENUE, product)
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

    def on_http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        """Product lists give each product's price precision (from its quote increment)."""
        try:
            data = self._loads(body)
            products = data["products"] if isinstance(data, dict) else data
            for p in products:
                product = p.get("product_id") or p["id"]
                if product in self.books:
                    continue  # a book already in integer units keeps them
                decimals = max(0, parse_decimal(p["quote_increment"])[1])
                self.units[product] = (decimals_unit(decimals), decimals_unit(SIZE_DECIMALS))
            return []
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return self._bad(body, f"unexpected REST answer from {url} ({exc})")

    def on_frame(self, text: str, ts_recv: int) -> list[Event]:
        try:
            msg = self._loads(text)
            if not isinstance(msg, dict):
                return self._bad(text, "not an object")
            if "channel" in msg:
                return self._advanced(msg, ts_recv)
            return self._exchange(msg, ts_recv)
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            return self._bad(text, f"unexpected frame ({type(exc).__name__}: {exc})")

    def _levels(self, product: str, rows: list[tuple[str, str, str]]) -> tuple[LevelChange, ...]:
        tick, lot = self.units_for(product)
        return tuple(
            (0 if side in ("bid", "buy") else 1, tick.to_units(price), lot.to_units(size))
            for side, price, size in rows
        )

    # --- Advanced Trade ----------------------------------------------------------------

    def _advanced(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        seq = int(msg["sequence_num"])
        out: list[Event] = []
        if self.sequence >= 0 and seq != self.sequence + 1:
            self.sequence_gaps += 1
            for sync in self.books.values():
                out += sync.invalidate("sequence gap", ts_recv)
        self.sequence = seq
        channel = msg["channel"]
        for event in msg.get("events", []):
            if channel == "l2_data":
                out += self._l2_data(event, ts_recv)
            elif channel == "market_trades":
                for t in event.get("trades", []):
                    if event["type"] == "update":
                        out.append(
                            self._trade(
                                t["product_id"],
                                t["trade_id"],
                                t["price"],
                                t["size"],
                                t["side"],
                                t["time"],
                                ts_recv,
                            )
                        )
            elif channel == "ticker":
                for t in event.get("tickers", []):
                    self._check_ticker(t["product_id"], t.get("best_bid"), t.get("best_ask"))
        return out

    def _l2_data(self, event: dict[str, Any], ts_recv: int) -> list[Event]:
        product = event["product_id"]
        rows = [(u["side"], u["price_level"], u["new_quantity"]) for u in event["updates"]]
        ts = max((iso_ns(u["event_time"]) for u in event["updates"]), default=0)
        levels = self._levels(product, rows)
        if event["type"] == "snapshot":
            return self._book(product).snapshot(Snapshot(levels, ts_event=ts), ts_recv)
        return self._book(product).delta(Delta(levels, ts_event=ts), ts_recv)

    # --- Exchange ----------------------------------------------------------------------

    def _exchange(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        kind = msg.get("type")
        if kind == "snapshot":
            product = msg["product_id"]
            rows = [("buy", p, s) for p, s in msg["bids"]] + [
                ("sell", p, s) for p, s in msg["asks"]
            ]
            return self._book(product).snapshot(Snapshot(self._levels(product, rows)), ts_recv)
        if kind == "l2update":
            product = msg["product_id"]
            delta = Delta(self._levels(product, msg["changes"]), ts_event=iso_ns(msg.get("time")))
            return self._book(product).delta(delta, ts_recv)
        if kind == "match":
            return [self._match(msg, ts_recv)]
        if kind == "ticker":
            product = msg["product_id"]
            # The first ticker after subscribing describes the last trade's moment, not the
            # current book (seen in the 2021 capture: it disagrees for 7 of 10 products).
            if product in self._ticked:
                self._check_ticker(product, msg.get("best_bid"), msg.get("best_ask"))
            self._ticked.add(product)
        return []

    # --- shared ------------------------------------------------------------------------

    def _trade(
        self,
        product: str,
        trade_id: Any,
        price: str,
        size: str,
        maker_side: str,
        time: str,
        ts_recv: int,
    ) -> Trade:
        tick, lot = self.units_for(product)
        seq = self._trade_seq(product)
        aggressor = 1 if maker_side.lower() == "buy" else 0  # the maker bought: a seller took it
        return Trade(
            VENUE,
            product,
            seq,
            str(trade_id),
            tick.to_units(price),
            lot.to_units(size),
            aggressor,
            iso_ns(time),
            ts_recv,
        )

    def _match(self, msg: dict[str, Any], ts_recv: int) -> Trade:
        """An Exchange-feed ``match`` message as a public trade."""
        return self._trade(
            msg["product_id"],
            msg["trade_id"],
            msg["price"],
            msg["size"],
            msg["side"],
            msg["time"],
            ts_recv,
        )

    def _check_ticker(self, product: str, best_bid: str | None, best_ask: str | None) -> None:
        sync = self.books.get(product)
        if sync is None or not sync.live or not best_bid or not best_ask:
            return
        tick, _lot = self.units_for(product)
        bid, ask = sync.book.best_bid(), sync.book.best_ask()
        top = (bid[0] if bid else None, ask[0] if ask else None)
        counts = self.ticker_checks.setdefault(product, [0, 0])
        counts[0 if top == (tick.to_units(best_bid), tick.to_units(best_ask)) else 1] += 1
