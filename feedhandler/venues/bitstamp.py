"""Bitstamp WebSocket v2 (``diff_order_book``, ``live_trades``) with REST order-book snapshots.

Sans-I/O: ``BitstampParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Symbols are Bitstamp's ``url_symbol`` (``btcusd``); units come
from ``/api/v2/trading-pairs-info/``: prices ``counter_decimals``, amounts
``base_decimals``; ``name`` (``BTC/USD``) gives the listing.

Book sync, as Bitstamp describes it: subscribe to ``diff_order_book_<pair>`` (absolute
amounts per price, ``"0.00000000"`` deletes), fetch ``/api/v2/order_book/<pair>`` (the
full book, with its ``microtimestamp``), drop every diff whose ``microtimestamp`` is at
or before the snapshot's and apply the rest. There are no sequence numbers and no
checksum, so nothing reveals a lost diff; a crossed book marks the symbol stale and the
runner fetches a new snapshot; one older than the last diff the book applied is refused
(``inconsistent``: the diffs between were dropped when the book went stale) and fetched
again. The shared engine runs the rule: each diff's id is its
``microtimestamp`` times 1000 plus its rank among diffs of that microsecond, and a
snapshot's id is its ``microtimestamp`` times 1000 plus 999, so "covered by the snapshot"
is exactly "not later than its microsecond" and diffs received before the snapshot
buffer until it arrives. The snapshot is fetched only once the venue has confirmed the
diff subscription (``bts:subscription_succeeded``) on the current connection, so no
diff between the snapshot and the subscription can be missed.

Trades: ``live_trades_<pair>`` ``trade`` events (``id``, ``price_str``, ``amount_str``,
``type`` 0 buy / 1 sell, the taker's side, ``microtimestamp``). Keep-alive: the runner
sends ``{"event":"bts:heartbeat"}`` every ``heartbeat_s``, answered by a
``bts:heartbeat`` event. A ``bts:request_reconnect`` (maintenance) stales every book;
the venue then closes the connection and the runner reconnects.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import (
    INT64_MAX,
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    price_levels,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, Trade
from hub.symbology import SymbologyError, spot

VENUE = "BITSTAMP"
PAIRS_INFO = "/api/v2/trading-pairs-info/"
ORDER_BOOK = "/api/v2/order_book/"
DIFFS = "diff_order_book_"
TRADES = "live_trades_"
HEARTBEAT_S = 10.0
HEARTBEAT = json.dumps({"event": "bts:heartbeat"})
MAX_DECIMALS = 18
RANKS = 1000
"""Diffs of one microsecond a book can tell apart (ids are microtimestamp * RANKS + rank)."""
MAX_MICROS = INT64_MAX // RANKS - 1


class BitstampParser(ParserBase):
    """Frames and REST bodies of one Bitstamp v2 connection in, normalized events out."""

    venue = VENUE
    chained = False
    """Nothing reveals a lost diff: a frame that cannot be pinned resyncs every book."""
    heartbeat_s = HEARTBEAT_S

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.subscribed: set[str] = set()
        """Pairs whose diff subscription the venue confirmed on this connection."""
        self.diffs: dict[str, int] = {}
        """Diffs received per pair (applied ones are the book's ``updates``)."""
        self._last: dict[str, tuple[int, int]] = {}
        """Per pair: (microtimestamp, rank) of the last diff received."""

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        received = self.diffs.get(symbol, 0)
        sync = self.books.get(symbol)
        applied = sync.stats.updates if sync is not None else 0
        return {"diffs": received, "diffs_applied": applied, "diffs_dropped": received - applied}

    def instrument_urls(self, rest: str) -> list[str]:
        return [rest + PAIRS_INFO]

    def subscribe(self, symbols: list[str]) -> list[str]:
        """A new connection: no subscription carries over from the last one."""
        self.subscribed.clear()
        return [_request("bts:subscribe", k + s) for k in (DIFFS, TRADES) for s in symbols]

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        """The pairs list while units are unknown; then a full order book for each stale
        pair whose diff subscription is confirmed."""
        if any(s not in self.units for s in symbols):
            return [rest + PAIRS_INFO]
        return [f"{rest}{ORDER_BOOK}{s}" for s in symbols if s in self.subscribed]

    def heartbeat(self) -> list[str]:
        return [HEARTBEAT]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        path = urlparse(url).path
        if path.rstrip("/") == PAIRS_INFO.rstrip("/"):
            return self._pairs(body, ts_recv)
        if not path.startswith(ORDER_BOOK):
            return []
        pair = path[len(ORDER_BOOK) :].strip("/")
        try:
            tick, lot = self._units(pair, "order book")
            data = as_dict(self._json(body), "order book")
            micros = _micros(field(data, "microtimestamp"))
            levels = price_levels(tick, lot, field(data, "bids"), field(data, "asks"))
        except MalformedFrame as exc:
            raise exc.on() from None  # a refused snapshot changes no book
        snap = Snapshot(levels, seq=micros * RANKS + RANKS - 1, ts_event=micros * 1000)
        known = self.books.get(pair)
        if known is not None and known.venue_id > snap.seq:
            # Diffs after it came before the book went stale and are gone with its buffer.
            why = f"snapshot at {micros} us is older than the book's last diff"
            raise MalformedFrame("inconsistent", why, ())
        return self._book(pair).snapshot(snap, ts_recv)

    def _pairs(self, body: str, ts_recv: int) -> list[Event]:
        found = []
        for item in as_list(self._json(body), "trading pairs"):
            pair = as_str(field(item, "url_symbol"), "url_symbol")
            name = as_str(field(item, "name"), "name")
            price = _decimals(field(item, "counter_decimals"), "counter_decimals")
            amount = _decimals(field(item, "base_decimals"), "base_decimals")
            found.append((pair, name, decimals_unit(price), decimals_unit(amount)))
        out: list[Event] = []
        for pair, name, tick, lot in found:
            out += self._new_units(self.units, pair, (tick, lot), ts_recv)
            base, _, quote = name.partition("/")
            with contextlib.suppress(SymbologyError):
                self.listings[pair] = spot(VENUE, pair, base, quote)
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        msg = as_dict(self._json(text), "frame")
        event = as_str(field(msg, "event"), "event")
        if event in ("bts:heartbeat", "bts:unsubscription_succeeded"):
            return []
        if event == "bts:request_reconnect":
            out: list[Event] = []
            for sync in self.books.values():
                out += sync.invalidate("venue asked to reconnect", ts_recv)
            return out
        if event == "bts:error":
            why = str(msg.get("data"))[:80]
            raise MalformedFrame("venue", f"error: {why}", ())
        channel = as_str(field(msg, "channel"), "channel")
        if event == "bts:subscription_succeeded":
            if channel.startswith(DIFFS):
                self.subscribed.add(channel[len(DIFFS) :])
            return []
        if event == "data" and channel.startswith(DIFFS):
            pair = channel[len(DIFFS) :]
            if pair not in self.units:
                raise MalformedFrame("symbol", f"diff for {pair[:20]!r}, an unknown pair")
            try:
                return self._diff(pair, as_dict(field(msg, "data"), "data"), ts_recv)
            except MalformedFrame as exc:
                raise exc.on(pair) from None
        if event == "trade":
            try:
                if not channel.startswith(TRADES):
                    raise MalformedFrame("shape", f"a trade on channel {channel[:30]!r}")
                return self._trade(channel[len(TRADES) :], field(msg, "data"), ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        # Nothing else comes on the channels subscribed: an unknown event or a "data" one
        # on another channel may have been a diff whose channel was damaged.
        raise MalformedFrame("shape", f"event {event[:30]!r} on channel {channel[:30]!r}")

    def _book(self, pair: str) -> BookSync:
        self._touch(pair)
        sync = self.books.get(pair)
        if sync is None:
            sync = self.books[pair] = BookSync(VENUE, pair, continuous=True)
            sync.sink = self._emitted
        return sync

    def _diff(self, pair: str, data: dict[str, Any], ts_recv: int) -> list[Event]:
        tick, lot = self.units[pair]
        micros = _micros(field(data, "microtimestamp"))
        levels = price_levels(tick, lot, field(data, "bids"), field(data, "asks"))
        last, rank = self._last.get(pair, (-1, 0))
        rank = rank + 1 if micros == last else 0
        if rank >= RANKS - 1:
            raise MalformedFrame("inconsistent", f"more than {RANKS - 1} diffs in one microsecond")
        self._last[pair] = (micros, rank)
        self.diffs[pair] = self.diffs.get(pair, 0) + 1
        delta = Delta(levels, last=micros * RANKS + rank, ts_event=micros * 1000)
        return self._book(pair).delta(delta, ts_recv)

    def _trade(self, pair: str, data: Any, ts_recv: int) -> list[Event]:
        tick, lot = self._units(pair, "trade")
        trade_id = count(field(data, "id"), "id", digits=True)
        kind = field(data, "type")
        if kind not in (0, 1) or isinstance(kind, bool):
            raise MalformedFrame("shape", f"trade type must be 0 or 1, got {kind!r:.10}")
        price = units(tick, field(data, "price_str"), "price_str", positive=True)
        size = units(lot, field(data, "amount_str"), "amount_str", positive=True)
        ts = _micros(field(data, "microtimestamp")) * 1000
        side = BUY if kind == 0 else SELL
        seq = self._trade_seq(pair)
        return [Trade(VENUE, pair, seq, str(trade_id), price, size, side, ts, ts_recv)]

    def _units(self, pair: str, what: str) -> tuple[Unit, Unit]:
        found = self.units.get(pair)
        if found is None:
            raise MalformedFrame("symbol", f"{what} for {pair[:20]!r}, an unknown pair")
        return found


def _request(event: str, channel: str) -> str:
    return json.dumps({"event": event, "data": {"channel": channel}})


def _micros(value: Any) -> int:
    """A ``microtimestamp``: Bitstamp sends a string of digits."""
    micros = count(as_str(value, "microtimestamp"), "microtimestamp", digits=True)
    if micros > MAX_MICROS:
        raise MalformedFrame("time", "microtimestamp is out of range")
    return micros


def _decimals(value: Any, what: str) -> int:
    decimals = count(value, what)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {decimals} is more than {MAX_DECIMALS}")
    return decimals
