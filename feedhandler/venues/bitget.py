"""Bitget v1 spot public WebSocket (``/spot/v1/stream``: ``books``, ``trade``) and the spot
products REST answer.

Sans-I/O: ``BitgetParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Symbols are the WebSocket ``instId`` (``EOSUSDT``); the
products answer (``/api/spot/v1/public/products``) names each by ``symbolName`` beside
its REST id (``EOSUSDT_SPBL``) and gives ``priceScale`` and ``quantityScale``, the
decimals of the tick and the lot.

Book sync is OKX's (feedhandler.venues.okx): a full-depth ``snapshot`` on subscribing,
then ``update`` messages of absolute level sizes ("0" deletes), each carrying
``checksum``, the signed CRC32 of the top 25 bids and asks interleaved
(``bidPx:bidSz:askPx:askSz:...``) as the strings sent. A failed checksum marks the
book stale; resubscribing ``books`` brings a fresh snapshot.

Trades: ``[ts_ms, price, size, side]`` rows without a trade id; the id is the venue
time and the stream's trade sequence (``ts:seq``). The ``snapshot`` a ``trade``
subscription starts with is the venue's recent history (trades from before the
subscription, resent on every reconnect) and is not published.

Keepalive: Bitget drops a connection that sends no text ``ping`` for two minutes and
asks for one every 30 s; it answers ``pong``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import MalformedFrame, as_dict, as_list, as_str, count, field, row, units
from feedhandler.sync import Delta, Snapshot
from feedhandler.venues.base import decimals_unit
from feedhandler.venues.okx import TopTextParser, millis, side_of, signed_checksum, text_levels
from hub.decimals import Unit
from hub.events import Event, Trade

VENUE = "BITGET"
MAX_DECIMALS = 18
PRODUCTS = "/api/spot/v1/public/products"


class BitgetParser(TopTextParser):
    """Frames and REST bodies from one Bitget v1 spot connection in, normalized events out."""

    venue = VENUE
    instrument_word = "product"

    def __init__(self) -> None:
        super().__init__()
        self.rest_ids: dict[str, str] = {}
        """WebSocket instId (EOSUSDT) -> REST symbol (EOSUSDT_SPBL)."""

    def instrument_urls(self, rest: str) -> list[str]:
        return [rest + PRODUCTS]

    @staticmethod
    def _request(op: str, channels: Iterable[str], symbols: list[str]) -> str:
        args = [{"instType": "SP", "channel": c, "instId": s} for c in channels for s in symbols]
        return json.dumps({"op": op, "args": args})

    def subscribe(self, symbols: list[str]) -> list[str]:
        return [self._request("subscribe", ("books", "trade"), symbols)]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if not urlparse(url).path.endswith(PRODUCTS):
            return []  # the futures contracts answer: not this spot feed's
        msg = as_dict(self._json(body), "products answer")
        if str(msg.get("code", "00000")) != "00000":
            raise MalformedFrame("venue", f"products: {str(msg.get('msg'))[:80]}")
        found: dict[str, tuple[str, Unit, Unit]] = {}
        for item in as_list(field(msg, "data"), "data"):
            name = as_str(field(item, "symbolName"), "symbolName")
            rest_id = as_str(field(item, "symbol"), "symbol")
            tick = _scale(field(item, "priceScale"), f"{name} priceScale")
            lot = _scale(field(item, "quantityScale"), f"{name} quantityScale")
            found[name] = (rest_id, tick, lot)
            base, quote = item.get("baseCoin"), item.get("quoteCoin")
            if isinstance(base, str) and isinstance(quote, str):
                self._list_spot(VENUE, name, base, quote)
        out: list[Event] = []
        for name, (rest_id, tick, lot) in found.items():
            out += self._new_units(self.units, name, (tick, lot), ts_recv)
            self.rest_ids[name] = rest_id
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        if text == "pong":
            return []
        msg = as_dict(self._json(text), "frame")
        if "event" in msg:
            if msg["event"] == "error":
                code, why = msg.get("code"), str(msg.get("msg", ""))[:80]
                raise MalformedFrame("venue", f"error {code}: {why}", ())
            return []  # subscribe / unsubscribe acknowledgements
        arg = as_dict(field(msg, "arg"), "arg")
        channel = as_str(field(arg, "channel"), "channel")
        symbol = as_str(field(arg, "instId"), "instId")
        action = as_str(field(msg, "action"), "action")
        if action not in ("snapshot", "update"):
            raise MalformedFrame("shape", f"action {action!r:.20}", (symbol,))
        if channel == "trade":
            try:
                return self._trades(symbol, action, field(msg, "data"), ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        if channel == "ticker" or channel.startswith("candle"):
            return []  # nothing the hub keeps
        if channel != "books":
            # A push on a channel no one asked for is not what it says: a books frame with
            # a damaged name would otherwise be a silently lost update.
            raise MalformedFrame("shape", f"unknown channel {channel!r:.30}", (symbol,))
        try:
            return self._books(symbol, action, field(msg, "data"), ts_recv)
        except MalformedFrame as exc:
            raise exc.on(symbol) from None

    def _books(self, symbol: str, action: str, data: Any, ts_recv: int) -> list[Event]:
        tick, lot = self._units(symbol, "book")
        parsed = []
        for item in as_list(data, "data"):
            changes, sent = text_levels(tick, lot, field(item, "bids"), field(item, "asks"))
            ts = millis(field(item, "ts"), "ts")
            crc = signed_checksum(item["checksum"]) if "checksum" in item else None
            parsed.append((changes, sent, ts, crc))
        sync = self._book(symbol)
        texts = self.texts[symbol]
        out: list[Event] = []
        for changes, sent, ts, crc in parsed:
            if action == "snapshot":
                texts.clear()
                texts.put(changes, sent)
                out += sync.snapshot(Snapshot(changes, ts_event=ts, checksum=crc), ts_recv)
            else:
                texts.put(changes, sent)
                out += sync.delta(Delta(changes, ts_event=ts, checksum=crc), ts_recv)
        return out

    def _trades(self, symbol: str, action: str, data: Any, ts_recv: int) -> list[Event]:
        tick, lot = self._units(symbol, "trade")
        parsed = []
        for item in as_list(data, "data"):
            r = row(item, 4, "trade")
            parsed.append(
                (
                    millis(r[0], "trade time"),
                    as_str(r[0], "trade time"),
                    units(tick, r[1], "trade price", positive=True),
                    units(lot, r[2], "trade size", positive=True),
                    side_of(r[3]),
                )
            )
        if action == "snapshot":
            return []  # recent history, from before the subscription
        out: list[Event] = []
        for ts, stamp, price, size, side in parsed:
            seq = self._trade_seq(symbol)
            out.append(Trade(VENUE, symbol, seq, f"{stamp}:{seq}", price, size, side, ts, ts_recv))
        return out


def _scale(value: Any, what: str) -> Unit:
    """A decimals count sent as a string of digits ("4") or an integer, as its unit."""
    decimals = count(value, what, digits=True)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {decimals} is more than {MAX_DECIMALS} decimals")
    return decimals_unit(decimals)
