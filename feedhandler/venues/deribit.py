"""Deribit API v2 over WebSocket (JSON-RPC): ``book``, ``trades`` and ``ticker`` channels, and
the ``public/get_instruments`` REST answer.

Sans-I/O. ``on_http`` takes ``/api/v2/public/get_instruments?currency=...`` (units and
listings), ``on_frame`` the WebSocket frames: JSON-RPC answers to our
requests (``result`` or ``error``), ``subscription`` notifications and ``heartbeat``s.

Book sync: ``book.{instrument}.{interval}`` starts with a ``snapshot`` (entries
``["new", price, amount]``), then ``change`` messages of ``new``/``change``/``delete``
entries carrying absolute amounts. Every message has a ``change_id`` and every change a
``prev_change_id``: one that is not the previous message's ``change_id`` is a gap
(counted, the book goes stale). An entry the book contradicts (``new`` for a price it
holds, ``change`` or ``delete`` for one it does not) shows the book is no longer the
venue's: counted in ``entry_errors`` and ``gaps``, book stale. ``recover``
unsubscribes and subscribes the book channel, and Deribit's first notification is a
fresh snapshot; changes while stale are dropped. No checksum. The ``raw`` interval of
the 2021 capture now needs an authorised connection; the public default is ``100ms``
(same messages, same chain).

Prices and amounts are JSON numbers, read from their exact text in units of the
decimals of the instrument's ``tick_size`` (the smallest of its ``tick_size_steps``)
and of its ``min_trade_amount``. Options' amounts are in the base coin, futures' in USD.

Each ``ticker`` is compared with the book as of the ticker's own ``timestamp`` (the
last book message stamped at or before it): a ticker often arrives just before the
book change it already reflects. ``ticker_matches`` counts those whose best bid and ask
prices and amounts equal the book's, ``ticker_mismatches`` the others (``--check``
refuses them); tickers from before the book's snapshot are not compared.

Keep-alive: ``public/set_heartbeat`` (30 s) after connecting; Deribit then sends
``heartbeat`` messages and, now and then, a ``test_request`` that must be answered with
``public/test`` at once (``answers``) or the connection is closed.

Trades: ``trades.{instrument}.{interval}`` rows; ``direction`` is the taker's side,
``trade_id`` the id, ``timestamp`` (ms) ``ts_event``.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import MalformedFrame, as_dict, as_list, field, millis_time, row
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, Top, decimals_unit
from feedhandler.venues.exact import (
    Number,
    exact_json,
    integer,
    number_units,
    string,
    unit_decimals,
)
from feedhandler.venues.okx import side_of
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import Listing, SymbologyError, future, option, perp, strike_text
from orderbook_core import deribit_frame

VENUE = "DERIBIT"
CURRENCIES = ("BTC", "ETH", "SOL", "USDC")
"""``get_instruments`` answers fetched (USDC: the linear contracts of every coin)."""
INTERVAL = "100ms"
HEARTBEAT_S = 30
NEW, CHANGE, DELETE = b"ncd"
"""An entry's action as ``deribit_frame`` reads it: one character of its ``actions``."""
ACTIONS = {NEW: "new", CHANGE: "change", DELETE: "delete"}
CODES = {name: action for action, name in ACTIONS.items()}
KEPT = 64
"""Book tops (by time) and unresolved tickers kept per instrument for the comparison."""
BookMessage = tuple[bool, int, int, int, tuple[LevelChange, ...], bytes]


class DeribitParser(ParserBase):
    """Frames and REST bodies of one Deribit connection in, normalized events out."""

    venue = VENUE
    chained = True
    """Every book's ``prev_change_id`` shows a lost message at its next one."""

    def __init__(self, interval: str = INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self.units: dict[str, tuple[int, int]] = {}
        """Per instrument: (price decimals, amount decimals)."""
        self.change_ids: dict[str, int] = {}
        self.entry_errors: dict[str, int] = {}
        self.ticker_checks: dict[str, list[int]] = {}
        """Per instrument: tickers that equal the book as of their time, and those that do not."""
        self._tops: dict[str, deque[tuple[int, Top]]] = {}
        """Per instrument: the book's top after each of its last messages, by ``timestamp``."""
        self._tickers: dict[str, deque[tuple[int, Top]]] = {}
        """Per instrument: tickers stamped at or after the book's last message."""
        self._ids = 0

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        price, amount = self.units[symbol]
        return decimals_unit(price), decimals_unit(amount)

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        matches, mismatches = self.ticker_checks.get(symbol, [0, 0])
        # Tickers stamped after the last book message: judged by the book as it stands.
        sync = self.books.get(symbol)
        tops = self._tops.get(symbol) if sync is not None and sync.live else None
        for ts, quote in self._tickers.get(symbol, ()):
            if tops and tops[-1][0] <= ts:
                matches += quote == tops[-1][1]
                mismatches += quote != tops[-1][1]
        return {
            "entry_errors": self.entry_errors.get(symbol, 0),
            "ticker_matches": matches,
            "ticker_mismatches": mismatches,
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [
            f"{rest}/api/v2/public/get_instruments?currency={c}&expired=false" for c in CURRENCIES
        ]

    def subscribe(self, symbols: list[str]) -> list[str]:
        channels = [
            f"{k}.{s}.{self.interval}" for k in ("book", "trades", "ticker") for s in symbols
        ]
        return [
            self._rpc("public/subscribe", {"channels": channels}),
            self._rpc("public/set_heartbeat", {"interval": HEARTBEAT_S}),
        ]

    def recover(self, symbols: list[str]) -> list[str]:
        """A resubscribed book channel starts with a snapshot."""
        channels = {"channels": [f"book.{s}.{self.interval}" for s in symbols]}
        return [self._rpc("public/unsubscribe", channels), self._rpc("public/subscribe", channels)]

    def _rpc(self, method: str, params: dict[str, Any]) -> str:
        self._ids += 1
        return json.dumps(
            {"jsonrpc": "2.0", "id": self._ids - 1, "method": method, "params": params}
        )

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if not urlparse(url).path.endswith("/get_instruments"):
            return []
        msg = as_dict(exact_json(body), "instruments answer")
        if "error" in msg:
            raise MalformedFrame("venue", f"get_instruments: {str(msg['error'])[:80]}")
        found = []
        for item in as_list(field(msg, "result"), "result"):
            name = string(field(item, "instrument_name"), "instrument_name")
            price = unit_decimals(field(item, "tick_size"), "tick_size")
            amount = unit_decimals(field(item, "min_trade_amount"), "min_trade_amount")
            found.append((name, price, amount, _listing(name, item)))
        out: list[Event] = []
        for name, price, amount, listing in found:
            known = self.units.get(name)
            if known is not None and known != (price, amount) and name in self.books:
                out += self.resync(name, "instrument changed", ts_recv)  # other integers
            self.units[name] = (price, amount)
            if listing is not None:
                self.listings[name] = listing
        return out

    # --- frames ------------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = deribit_frame(text, self.units)  # tickers and book messages: all but a few
        if scan is not None:
            if scan[0] == "ticker":
                self._quote(scan[1], scan[2], scan[3])
                return []
            _book, instrument, snapshot, change_id, prev, ts, levels, actions = scan
            return self._book(instrument, snapshot, change_id, prev, ts, levels, actions, ts_recv)
        msg = as_dict(exact_json(text), "frame")
        method = msg.get("method")
        if method == "subscription":
            params = as_dict(field(msg, "params"), "params")
            kind, _, rest = string(field(params, "channel"), "channel").partition(".")
            instrument = rest.rpartition(".")[0]
            data = field(params, "data")
            if kind == "book":
                try:
                    read = self._book_message(instrument, as_dict(data, "data"))
                except MalformedFrame as exc:
                    raise exc.on(instrument) from None
                return self._book(instrument, *read, ts_recv)
            try:
                if kind == "trades":
                    return self._trades(as_list(data, "data"), ts_recv)
                if kind == "ticker":
                    self._ticker(instrument, as_dict(data, "data"))
            except MalformedFrame as exc:
                raise exc.on() from None
            return []  # other channels carry nothing the hub keeps
        if method == "heartbeat":
            params = as_dict(field(msg, "params"), "params")
            if params.get("type") == "test_request":
                self._answers.append(self._rpc("public/test", {}))
            return []
        if "error" in msg:
            error = msg["error"]
            code, why = (
                (error.get("code"), error.get("message"))
                if isinstance(error, dict)
                else ("", error)
            )
            raise MalformedFrame("venue", f"Deribit error {code}: {str(why)[:80]}", ())
        if "result" in msg:
            return []  # answers to subscribe, set_heartbeat, test
        raise MalformedFrame("shape", "a frame with no 'method', 'result' or 'error'")

    def _units(self, instrument: str, what: str) -> tuple[int, int]:
        found = self.units.get(instrument)
        if found is None:
            raise MalformedFrame("symbol", f"{what} for {instrument[:30]!r} before instrument data")
        return found

    def _sync(self, instrument: str) -> BookSync:
        self._touch(instrument)
        sync = self.books.get(instrument)
        if sync is None:
            sync = self.books[instrument] = BookSync(VENUE, instrument)
            sync.sink = self._emitted
        return sync

    def _book_message(self, instrument: str, data: dict[str, Any]) -> BookMessage:
        """A book message's data as ``deribit_frame`` reads it: (snapshot?, change_id,
        prev_change_id or 0, timestamp in ns, levels (side, price, amount: 0 for a
        deletion), each level's action: ``NEW``, ``CHANGE`` or ``DELETE``)."""
        pd, ad = self._units(instrument, "book")
        kind = string(field(data, "type"), "type")
        if kind not in ("snapshot", "change"):
            raise MalformedFrame("shape", f"book message type {kind[:20]!r}")
        change_id = integer(field(data, "change_id"), "change_id")
        prev = integer(field(data, "prev_change_id"), "prev_change_id") if kind == "change" else 0
        ts = _millis(field(data, "timestamp"), "timestamp")
        levels: list[LevelChange] = []
        actions = bytearray()
        for side, key in ((BUY, "bids"), (SELL, "asks")):
            for item in as_list(field(data, key), key):
                action, price, amount = _entry(pd, ad, item)
                levels.append((side, price, amount))
                actions.append(action)
        snapshot = kind == "snapshot"
        if snapshot and actions.count(NEW) != len(actions):
            raise MalformedFrame("shape", "a snapshot entry that is not 'new'")
        return snapshot, change_id, prev, ts, tuple(levels), bytes(actions)

    def _book(
        self,
        instrument: str,
        snapshot: bool,
        change_id: int,
        prev: int,
        ts: int,
        levels: tuple[LevelChange, ...],
        actions: bytes,
        ts_recv: int,
    ) -> list[Event]:
        sync = self._sync(instrument)
        self._judge_tickers(instrument, ts, sync)
        if snapshot:
            out = sync.snapshot(Snapshot(levels, ts_event=ts), ts_recv)
            self._tops.pop(instrument, None)
        elif not sync.live:
            return []  # before the snapshot, or stale: the next snapshot covers it
        elif prev != self.change_ids.get(instrument):
            sync.stats.gaps += 1
            return sync.invalidate("gap", ts_recv)
        else:
            why = _contradiction(sync, levels, actions)
            if why is not None:
                self.entry_errors[instrument] = self.entry_errors.get(instrument, 0) + 1
                sync.stats.gaps += 1
                return sync.invalidate(why, ts_recv)
            out = sync.delta(Delta(levels, ts_event=ts), ts_recv)
        self.change_ids[instrument] = change_id
        if sync.live:
            _kept(self._tops, instrument).append((ts, sync.book.top()))
        return out

    def _judge_tickers(self, instrument: str, ts: int, sync: BookSync) -> None:
        """Before a book message stamped ``ts``: tickers stamped earlier saw the book as it
        stands (if it was live since before their time)."""
        waiting = self._tickers.get(instrument)
        if not waiting:
            return
        tops = self._tops.get(instrument)
        while waiting and waiting[0][0] < ts:
            stamp, quote = waiting.popleft()
            if sync.live and tops and tops[-1][0] <= stamp:
                self._compare(instrument, quote, tops[-1][1])

    def _ticker(self, instrument: str, data: dict[str, Any]) -> None:
        pd, ad = self._units(instrument, "ticker")
        quote = (
            _optional(pd, data.get("best_bid_price"), "best_bid_price"),
            _optional(ad, data.get("best_bid_amount"), "best_bid_amount"),
            _optional(pd, data.get("best_ask_price"), "best_ask_price"),
            _optional(ad, data.get("best_ask_amount"), "best_ask_amount"),
        )
        self._quote(instrument, _millis(field(data, "timestamp"), "timestamp"), quote)

    def _quote(self, instrument: str, ts: int, quote: Top) -> None:
        """A ticker's best bid and ask, stamped ``ts``: compared with the book as it stood
        then, now if kept, or once the next book message shows the book has not moved."""
        tops = self._tops.get(instrument)
        if tops and ts < tops[-1][0]:
            # The book has moved past the ticker's time: its top as of then, if still kept.
            then = [top for stamp, top in tops if stamp <= ts]
            if then:
                self._compare(instrument, quote, then[-1])
            return
        waiting = _kept(self._tickers, instrument)
        if waiting and ts < waiting[-1][0]:
            return  # out of order with the tickers before it: not comparable
        waiting.append((ts, quote))

    def _compare(self, instrument: str, quote: Top, top: Top) -> None:
        self.ticker_checks.setdefault(instrument, [0, 0])[quote != top] += 1

    def _trades(self, rows: list[Any], ts_recv: int) -> list[Event]:
        parsed = []
        for t in rows:
            name = string(field(t, "instrument_name"), "instrument_name")
            pd, ad = self._units(name, "trade")
            parsed.append(
                (
                    name,
                    _trade_id(field(t, "trade_id")),
                    number_units(pd, field(t, "price"), "price", True),
                    number_units(ad, field(t, "amount"), "amount", True),
                    side_of(field(t, "direction")),
                    _millis(field(t, "timestamp"), "timestamp"),
                )
            )
        return [
            Trade(VENUE, name, self._trade_seq(name), tid, price, amount, side, ts, ts_recv)
            for name, tid, price, amount, side, ts in parsed
        ]


def _entry(pd: int, ad: int, item: Any) -> tuple[int, int, int]:
    """An entry ``[action, price, amount]``: its action (``NEW``, ``CHANGE``, ``DELETE``),
    price and amount (0 for a deletion) in units."""
    r = row(item, 3, "book entry")
    name = string(r[0], "entry action")
    action = CODES.get(name)
    if action is None:
        raise MalformedFrame("shape", f"entry action {name[:20]!r}")
    price = number_units(pd, r[1], "price", True)
    amount = number_units(ad, r[2], "amount")
    return action, price, 0 if action == DELETE else amount


def _contradiction(sync: BookSync, levels: tuple[LevelChange, ...], actions: bytes) -> str | None:
    """The first entry of a change the book contradicts, None if none."""
    held: dict[tuple[int, int], bool] = {}
    for (side, price, _amount), action in zip(levels, actions, strict=True):
        key = (side, price)
        there = held[key] if key in held else _holds(sync, side, price)
        if there == (action == NEW):
            word = "already holds" if there else "does not hold"
            name = ACTIONS[action]
            return f"{name} of price {price} on side {side}, which the book {word}"
        held[key] = action != DELETE
    return None


def _kept(by: dict[str, deque[tuple[int, Top]]], instrument: str) -> deque[tuple[int, Top]]:
    """The instrument's deque of the last ``KEPT``, made the first time (``setdefault``
    would make one at every call: a 64-slot block)."""
    kept = by.get(instrument)
    if kept is None:
        kept = by[instrument] = deque(maxlen=KEPT)
    return kept


def _holds(sync: BookSync, side: int, price: int) -> bool:
    return sync.book.size_at(side, price) > 0


def _millis(value: Any, what: str) -> int:
    return millis_time(integer(value, what), what)


def _optional(decimals: int, value: Any, what: str) -> int:
    """A ticker price or amount; null (an empty side) is 0."""
    return 0 if value is None else number_units(decimals, value, what)


def _trade_id(value: Any) -> str:
    """Deribit's trade ids are strings (``"ETH-12345"``); older ones were numbers."""
    if isinstance(value, Number):
        return str(integer(value, "trade_id"))
    return string(value, "trade_id")


def _listing(name: str, item: dict[str, Any]) -> Listing | None:
    """The canonical listing of an instrument (None for kinds the hub does not name, such
    as combos, or values that do not parse)."""
    kind = item.get("kind")
    try:
        base = string(field(item, "base_currency"), "base_currency")
        quoted = string(field(item, "quote_currency"), "quote_currency")
        terms = item.get("future_type") or item.get("instrument_type")
        if kind == "option":  # sized in the coin (hub.symbology.Listing.inverse)
            inverse = False
        elif isinstance(terms, str):
            inverse = terms == "reversed"
        else:  # 2021: coin futures quoted in USD
            inverse = quoted == "USD"
        counter = item.get("counter_currency")
        quote = counter if isinstance(counter, str) else ("USD" if quoted == base else quoted)
        settle = item.get("settlement_currency")
        if not isinstance(settle, str):  # coin options are priced and settled in the coin
            settle = base if inverse or quoted == base else quoted
        size = strike_text(str(item.get("contract_size", "1")))
        ms = integer(item["expiration_timestamp"], "expiration_timestamp")
        common: dict[str, Any] = {"settle": settle, "contract_size": size, "inverse": inverse}
        if kind == "option":
            strike, right = str(field(item, "strike")), str(field(item, "option_type"))
            return option(VENUE, name, base, quote, ms, strike, right, **common)
        if kind != "future":
            return None
        if item.get("settlement_period") == "perpetual":
            return perp(VENUE, name, base, quote, **common)
        return future(VENUE, name, base, quote, ms, **common)
    except (SymbologyError, MalformedFrame, KeyError):
        return None
