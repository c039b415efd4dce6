"""OKX v5 public WebSocket (``books``, ``trades``) and the instruments REST answer.

Sans-I/O: ``OkxParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Tick and lot of every instrument are its ``tickSz`` and
``lotSz`` from ``/api/v5/public/instruments`` (spot, swaps, futures), read exactly
from the strings; futures and swaps also keep their contract (``ctVal`` of
``ctValCcy``, ``ctType``, ``ctMult``, settlement currency) in ``contracts``.

Book sync: the ``books`` channel sends a 400-level ``snapshot`` on subscribing, then
``update`` messages of absolute level sizes (size "0" deletes); every message carries
``checksum``, a signed 32-bit CRC32 of the top 25 levels of the book after it,
interleaved best first as ``bidPx:bidSz:askPx:askSz:...`` (a side with fewer levels
simply ends early), prices and sizes as the strings the venue sent. The parser keeps
those strings beside the integer book, so the checksum is computed from exactly what
was received: re-formatted numbers ("30316.0" for a sent "30316") would not match.
A failed checksum marks the book stale and the runner resubscribes the channel,
which makes OKX send a fresh snapshot. The current API also numbers the messages
(``seqId``, with ``prevSeqId`` = the previous message's ``seqId``; -1 on a snapshot;
after a venue restart ``seqId`` may fall, which is no gap): when both are sent, a
``prevSeqId`` that is not the last ``seqId`` is a gap and resyncs the book at once,
before the checksum would. The 2022 capture predates them. Levels are never cut to 400: OKX does not
delete levels that move past the 400th, and one that comes back inside is not
resent.

Keepalive: OKX closes a connection with no traffic for 30 s; the client sends the
text ``ping`` every ``heartbeat_s`` and the venue answers ``pong`` (``heartbeat``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

from feedhandler.frames import MalformedFrame, as_dict, as_list, as_str, count, field, row, units
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import Listing, SymbologyError, future, perp, spot, strike_text
from orderbook_core import L2Book, list_levels

VENUE = "OKX"
CHECKSUM_LEVELS = 25
INSTRUMENT_TYPES = ("SPOT", "SWAP", "FUTURES")
PING_SECONDS = 25.0
BOOK_CHANNELS = ("books", "books-l2-tbt", "books50-l2-tbt")
IGNORED_CHANNELS = frozenset({"tickers", "bbo-tbt", "books5", "mark-price", "index-tickers"})
"""Public channels whose pushes carry nothing the hub keeps (recorded captures hold
``tickers``); a push on any other channel is refused as malformed."""
"""Send ``ping`` this often (OKX drops a connection silent for 30 s)."""
INT32 = 1 << 31


@dataclass(frozen=True, slots=True)
class Contract:
    """A derivative's contract as the venue states it (the hub's Instrument record has no
    field for it yet): ``value`` of ``currency`` per contract."""

    kind: str
    """``inverse`` or ``linear``."""
    value: str
    currency: str
    multiplier: str
    settle: str
    expiry_ms: int
    """0 for perpetual swaps."""


class TextBook:
    """The price and size strings a venue sent for each level of a book, beside the integer
    book: what a checksum over "the strings as sent" needs."""

    __slots__ = ("sides",)

    def __init__(self) -> None:
        self.sides: tuple[dict[int, str], dict[int, str]] = ({}, {})

    def clear(self) -> None:
        for side in self.sides:
            side.clear()

    def apply(self, levels: Iterable[tuple[int, int, int, str]]) -> None:
        """(side, price ticks, size lots, "price:size" as sent); size 0 deletes."""
        rows = list(levels)
        self.put([r[:3] for r in rows], [r[3] for r in rows])

    def put(self, changes: Sequence[LevelChange], texts: Sequence[str]) -> None:
        """Each change (side, price ticks, size lots) with its "price:size" as sent; size 0
        deletes the level's."""
        sides = self.sides
        for (side, price, size), text in zip(changes, texts, strict=True):
            if size:
                sides[side][price] = text
            else:
                sides[side].pop(price, None)

    def checksum(self, book: L2Book, fallback: tuple[Unit, Unit]) -> int:
        """Signed CRC32 of the top 25 bids and asks interleaved (OKX and Bitget v1), each
        level's text as sent (a level without one written from the units)."""
        tick, lot = fallback
        bids, asks = self.sides
        return book.text_checksum(
            bids, asks, CHECKSUM_LEVELS, lambda _side, p, s: f"{tick.to_str(p)}:{lot.to_str(s)}"
        )


def signed_checksum(value: Any, what: str = "checksum") -> int:
    """A venue checksum sent as a signed 32-bit JSON integer."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedFrame("shape", f"{what} must be an integer, got {type(value).__name__}")
    if not -INT32 <= value < INT32:
        raise MalformedFrame("range", f"{what} {value} is not a signed 32-bit integer")
    return value


def millis(value: Any, what: str) -> int:
    """Milliseconds since the epoch, sent as a string of digits (or an integer), as ns."""
    ms = count(value, what, digits=True)
    if ms > (1 << 63) // 1_000_000:
        raise MalformedFrame("time", f"{what} is out of range")
    return ms * 1_000_000


def text_levels(
    tick: Unit, lot: Unit, bids: Any, asks: Any
) -> tuple[tuple[LevelChange, ...], list[str]]:
    """``[[price, size, ...], ...]`` of both sides as the changes (side, ticks, lots), bids
    first, and beside them each row's "price:size" as sent (``TextBook.put``)."""
    b, a = as_list(bids, "bids"), as_list(asks, "asks")
    plain_bids = list_levels(b, 0, tick.scale, lot.scale)  # rows of plain strings
    plain_asks = None if plain_bids is None else list_levels(a, 1, tick.scale, lot.scale)
    if plain_bids is not None and plain_asks is not None:
        return tuple(plain_bids[0] + plain_asks[0]), [f"{r[0]}:{r[1]}" for r in b + a]
    changes: list[LevelChange] = []
    texts: list[str] = []
    for side, rows in ((0, b), (1, a)):
        for item in rows:
            r = row(item, 2, "level")
            price = units(tick, r[0], "price", positive=True)
            changes.append((side, price, units(lot, r[1], "size")))
            texts.append(f"{r[0]}:{r[1]}")
    return tuple(changes), texts


def side_of(value: Any) -> int:
    if value == "buy":
        return BUY
    if value == "sell":
        return SELL
    raise MalformedFrame("shape", f"side must be 'buy' or 'sell', got {value!r:.20}")


class TopTextParser(ParserBase):
    """What OKX and Bitget share: books checksummed over the text of their top 25 levels
    (TextBook beside each integer book), the text ``ping`` keep-alive, a resubscribed
    ``books`` channel as the recovery, and units per symbol from the REST answer."""

    heartbeat_s = PING_SECONDS
    chained = False
    """The checksum covers the top 25 levels only and there are no sequence numbers (OKX
    before seqId): a lost frame that changed deeper levels is never seen, so a frame that
    cannot be pinned on a symbol resyncs every book of the connection."""
    instrument_word = "instrument"
    """What the venue calls an instrument, in errors."""

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.texts: dict[str, TextBook] = {}

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def heartbeat(self) -> list[str]:
        """The keep-alive: the text ``ping`` (answered by ``pong``)."""
        return ["ping"]

    @staticmethod
    def _request(op: str, channels: Iterable[str], symbols: list[str]) -> str:
        raise NotImplementedError

    def recover(self, symbols: list[str]) -> list[str]:
        """A resubscribed ``books`` channel starts with a fresh snapshot."""
        return [
            self._request("unsubscribe", ("books",), symbols),
            self._request("subscribe", ("books",), symbols),
        ]

    def _book(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            texts = self.texts[symbol] = TextBook()
            sync = self.books[symbol] = BookSync(
                self.venue, symbol, checksum=lambda book: texts.checksum(book, self.units[symbol])
            )
            sync.sink = self._emitted
        return sync

    def _units(self, symbol: str, what: str) -> tuple[Unit, Unit]:
        found = self.units.get(symbol)
        if found is None:
            word = self.instrument_word
            raise MalformedFrame("symbol", f"{what} for {symbol[:30]}, an unknown {word}")
        return found


class OkxParser(TopTextParser):
    """Frames and REST bodies from one OKX connection in, normalized events out."""

    venue = VENUE

    def __init__(self) -> None:
        super().__init__()
        self.contracts: dict[str, Contract] = {}
        self.seq_ids: dict[str, int] = {}
        """Last ``seqId`` of each book (venues that send them)."""

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/api/v5/public/instruments?instType={t}" for t in INSTRUMENT_TYPES]

    @staticmethod
    def _request(op: str, channels: Iterable[str], symbols: list[str]) -> str:
        args = [{"channel": c, "instId": s} for c in channels for s in symbols]
        return json.dumps({"op": op, "args": args})

    def subscribe(self, symbols: list[str]) -> list[str]:
        return [self._request("subscribe", ("books", "trades"), symbols)]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if not urlparse(url).path.endswith("/public/instruments"):
            return []
        kind = parse_qs(urlparse(url).query).get("instType", [""])[0]
        msg = as_dict(self._json(body), "instruments answer")
        if str(msg.get("code", "0")) != "0":
            raise MalformedFrame("venue", f"instruments {kind}: {str(msg.get('msg'))[:80]}")
        found: dict[str, tuple[Unit, Unit, Contract | None]] = {}
        for item in as_list(field(msg, "data"), "data"):
            symbol = as_str(field(item, "instId"), "instId")
            tick = _unit(field(item, "tickSz"), f"{symbol} tickSz")
            lot = _unit(field(item, "lotSz"), f"{symbol} lotSz")
            contract = None
            if item.get("ctVal"):
                expiry = item.get("expTime") or "0"
                contract = Contract(
                    as_str(item.get("ctType", ""), "ctType"),
                    as_str(item["ctVal"], "ctVal"),
                    as_str(item.get("ctValCcy", ""), "ctValCcy"),
                    as_str(item.get("ctMult", ""), "ctMult"),
                    as_str(item.get("settleCcy", ""), "settleCcy"),
                    count(expiry, "expTime", digits=True),
                )
            found[symbol] = (tick, lot, contract)
        out: list[Event] = []
        for symbol, (tick, lot, contract) in found.items():
            out += self._new_units(self.units, symbol, (tick, lot), ts_recv)
            if contract is not None:
                self.contracts[symbol] = contract
            listing = _listing(symbol, contract)
            if listing is not None:
                self.listings[symbol] = listing
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        if text == "pong":
            return []
        msg = as_dict(self._json(text), "frame")
        if "event" in msg:
            event = msg["event"]
            if event == "error":
                code, why = msg.get("code"), str(msg.get("msg", ""))[:80]
                raise MalformedFrame("venue", f"error {code}: {why}", ())
            return []  # subscribe / unsubscribe acknowledgements
        arg = as_dict(field(msg, "arg"), "arg")
        channel = as_str(field(arg, "channel"), "channel")
        symbol = as_str(field(arg, "instId"), "instId")
        if channel == "trades":
            try:
                return self._trades(symbol, field(msg, "data"), ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        if channel in IGNORED_CHANNELS:
            return []  # subscribed by other clients of the capture; nothing the hub keeps
        if channel not in BOOK_CHANNELS:
            # A push on a channel no one asked for: a frame that is not what it says (a
            # books frame with a damaged name would otherwise be a silently lost update).
            raise MalformedFrame("shape", f"unknown channel {channel!r:.30}").on(symbol)
        try:
            return self._books(symbol, msg, ts_recv)
        except MalformedFrame as exc:
            raise exc.on(symbol) from None

    def _books(self, symbol: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        action = as_str(field(msg, "action"), "action")
        if action not in ("snapshot", "update"):
            raise MalformedFrame("shape", f"books action {action!r:.20}")
        tick, lot = self._units(symbol, "book")
        parsed = []
        for item in as_list(field(msg, "data"), "data"):
            changes, sent = text_levels(tick, lot, field(item, "bids"), field(item, "asks"))
            ts = millis(field(item, "ts"), "ts")
            crc = signed_checksum(item["checksum"]) if "checksum" in item else None
            seq = _seq_id(item.get("seqId"), "seqId")
            prev = _seq_id(item.get("prevSeqId"), "prevSeqId")
            parsed.append((changes, sent, ts, crc, seq, prev))
        sync = self._book(symbol)
        texts = self.texts[symbol]
        out: list[Event] = []
        for changes, sent, ts, crc, seq, prev in parsed:
            last = self.seq_ids.pop(symbol, None)
            if seq is not None:
                self.seq_ids[symbol] = seq
            if action == "snapshot":
                texts.clear()
                texts.put(changes, sent)
                out += sync.snapshot(Snapshot(changes, ts_event=ts, checksum=crc), ts_recv)
            elif sync.live and None not in (last, prev) and prev != last:
                sync.stats.gaps += 1
                out += sync.invalidate("gap", ts_recv)
            else:
                texts.put(changes, sent)
                out += sync.delta(Delta(changes, ts_event=ts, checksum=crc), ts_recv)
        return out

    def _trades(self, symbol: str, data: Any, ts_recv: int) -> list[Event]:
        tick, lot = self._units(symbol, "trade")
        parsed = [
            (
                as_str(field(t, "tradeId"), "tradeId"),
                units(tick, field(t, "px"), "px", positive=True),
                units(lot, field(t, "sz"), "sz", positive=True),
                side_of(field(t, "side")),
                millis(field(t, "ts"), "ts"),
            )
            for t in as_list(data, "data")
        ]
        return [
            Trade(VENUE, symbol, self._trade_seq(symbol), tid, px, sz, side, ts, ts_recv)
            for tid, px, sz, side, ts in parsed
        ]


def _seq_id(value: Any, what: str) -> int | None:
    """A message number: absent, -1 (a snapshot's ``prevSeqId``) or a non-negative int64."""
    if value is None or value == -1:
        return None
    return count(value, what)


_UNITS: dict[str, Unit] = {}
UNITS_CACHED = 10_000
"""Distinct tick and lot texts kept (an instruments answer repeats a handful thousands of
times; Units are immutable)."""


def _unit(value: Any, what: str) -> Unit:
    text = as_str(value, what)
    unit = _UNITS.get(text)
    if unit is not None:
        return unit
    try:
        unit = Unit(text)
    except ValueError:
        raise MalformedFrame("number", f"{what} {text[:30]!r} is not a positive decimal") from None
    if len(_UNITS) < UNITS_CACHED:
        _UNITS[text] = unit
    return unit


def _listing(symbol: str, contract: Contract | None) -> Listing | None:
    """``BTC-USDT`` spot, ``BTC-USD-SWAP`` perpetual, ``BTC-USD-220527`` future; size
    ``ctVal`` x ``ctMult`` (in the quote for inverse contracts, ``ctValCcy`` USD). None for
    kinds the hub does not name (options) or codes that do not parse."""
    parts = symbol.split("-")
    try:
        if contract is None:
            return spot(VENUE, symbol, *parts) if len(parts) == 2 else None
        if len(parts) != 3:
            return None
        size = strike_text(str(Decimal(contract.value) * Decimal(contract.multiplier or "1")))
        settle, inverse = contract.settle or parts[0], contract.kind == "inverse"
        base, quote = parts[0], parts[1]
        if parts[2] == "SWAP":
            return perp(
                VENUE, symbol, base, quote, settle=settle, contract_size=size, inverse=inverse
            )
        if contract.expiry_ms:
            return future(
                VENUE,
                symbol,
                base,
                quote,
                contract.expiry_ms,
                settle=settle,
                contract_size=size,
                inverse=inverse,
            )
    except (SymbologyError, ArithmeticError, ValueError):
        return None
    return None
