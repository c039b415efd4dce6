"""Bitfinex WebSocket v2 (``book`` P0, ``trades``, ``ticker``) and its ``conf`` REST lists.

Sans-I/O: ``BitfinexParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Symbols are Bitfinex's (``tBTCUSD``, ``tTESTBTC:TESTUSD``,
``tBTCF0:USTF0``); ``listings`` names each canonically (``BTC-USD``, ``BTC-USDT-PERP``),
from the pair lists ``/v2/conf/pub:list:pair:exchange`` and ``...:future`` and the symbols
subscribed, with ``pub:map:currency:sym`` (``IOT`` → ``IOTA``) when fetched.

Channels: every data message is ``[chanId, body..., seq]``; the channel id names the
subscription a ``subscribed`` event announced (``unsubscribed`` retires it). The parser
asks (``conf``) for ``SEQ_ALL``, a per-connection sequence number as the last element
of every channel message, heartbeats ``[chanId, "hb", seq]`` included, and for
``OB_CHECKSUM``. The sequence is read before the body (a frame that arrived keeps the
chain even if its body is refused) and must rise by 1: a missing number means a lost
message of unknown channel, so every book of the connection goes stale
(``sequence_gaps``) and is resubscribed. Heartbeats may name a channel before its
``subscribed`` event (the 2021 capture has two): they count in the sequence only.

Book (precision P0, ``len`` 100): a snapshot ``[[price, count, amount], ...]`` (one per
subscription: a second is refused) then one entry per message; ``count`` 0 deletes
the price level, otherwise ``amount`` is the level's total, positive for a bid and
negative for an ask. Prices and amounts are JSON
numbers read from their exact text (``1.1e-7`` included), never through float, in units
of 10**-8: Bitfinex prices have five significant digits and at most 8 decimals, amounts
8 decimals. ``[chanId, "cs", checksum, seq]`` carries the signed CRC32 of the top 25
bids and asks interleaved ``bidPrice:bidAmount:askPrice:askAmount:...`` (ask amounts
negative), the numbers as sent: the parser keeps each level's text beside the integer
book (okx.TextBook) and verifies every ``cs`` it gets; a mismatch, like a crossed book,
marks the book stale and the runner resubscribes it (unsubscribe by channel id, then
subscribe: Bitfinex answers with a fresh snapshot). Bitfinex keeps ``len`` levels a side
and deletes each level that leaves that range, with amount 1 (bid) or -1 (ask): a
deletion of a level the book lacks, or a side past ``len`` levels, means an update was
lost, so the book goes stale too (``book_inconsistencies``, counted in ``gaps``).

Trades: the snapshot a subscription starts with is history and is not published; each
trade then arrives twice, as ``te`` (executed) and ``tu`` (updated), ``[ID, MTS, AMOUNT,
PRICE]`` with the aggressor's side as the amount's sign: the first of the two is
published, the other recognised by its id. ``ticker`` messages' best bid and ask are
compared with the book when they arrive (``ticker_agrees``/``ticker_disagrees``); their
sizes are the sums of the 25 best levels' amounts, sent with float noise
(``19203.444049780002``), rounded exactly to 8 decimals and compared with the book's
sums too (``ticker_sizes_agree``). The ticker is a throttled view that lags the book by
up to tens of changes, so these are figures, not checks.

Keep-alive: Bitfinex sends ``hb`` on every channel quiet for 15 s; the runner also sends
``{"event":"ping","cid":1}`` (answered by ``pong``) every ``heartbeat_s``. ``info``
events with code 20051 (server restart) or 20061 (maintenance over) stale every book.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import MalformedFrame, as_list, count, field, rounded, row
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import Number, exact_json, number, number_units, string
from feedhandler.venues.okx import TextBook
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import Listing, SymbologyError, perp, spot
from orderbook_core import bitfinex_book

VENUE = "BITFINEX"
SEQ_ALL = 65536
OB_CHECKSUM = 131072
FLAGS = SEQ_ALL | OB_CHECKSUM
DECIMALS = 8
UNIT = decimals_unit(DECIMALS)
BOOK_LENGTH = "100"
HEARTBEAT_S = 15.0
PING = json.dumps({"event": "ping", "cid": 1})
PAIR_LISTS = ("pub:list:pair:exchange", "pub:list:pair:future")
CURRENCY_MAP = "pub:map:currency:sym"
RESTART_CODES = {"20051": "venue restart", "20061": "maintenance ended"}
TRADES_REMEMBERED = 1024
"""Trade ids kept per symbol to publish each trade once (``te`` then ``tu``)."""
TICKER_LEVELS = 25
"""A ticker's BID_SIZE and ASK_SIZE are the sums of the 25 best levels' amounts."""
INT32 = 1 << 31
UNITS_OF_ONE = 10**DECIMALS
Level = tuple[int, int, int, str]  # side, price, size, "price:amount" as sent


class BitfinexParser(ParserBase):
    """Frames and REST bodies of one Bitfinex v2 connection in, normalized events out."""

    venue = VENUE
    chained = False
    """A frame whose channel cannot be read may have been any book's: all resync."""
    heartbeat_s = HEARTBEAT_S

    def __init__(self) -> None:
        super().__init__()
        self.flags = 0
        """The ``conf`` flags the venue confirmed on this connection."""
        self.sequence = -1
        self.sequence_gaps = 0
        self.channels: dict[int, tuple[str, str]] = {}
        """chanId -> (channel, symbol) of every live subscription."""
        self.book_channels: dict[str, int] = {}
        self.texts: dict[str, TextBook] = {}
        self.currencies: dict[str, str] = {}
        """Bitfinex currency code -> the standard symbol (``pub:map:currency:sym``)."""
        self.pairs: set[str] = set()
        self.ticker_checks: dict[str, list[int]] = {}
        """Per symbol: tickers whose bid and ask equal the book's best, those that do not,
        and those whose sizes (rounded to 8 decimals) agree too."""
        self.lengths: dict[str, int] = {}
        """Levels a side of each book subscription (``len``; 0 when not stated)."""
        self.inconsistencies: dict[str, int] = {}
        self._seen: dict[str, dict[int, None]] = {}
        self._fresh: set[int] = set()
        """Book channels subscribed whose snapshot has not come yet (only one comes)."""

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return UNIT, UNIT

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        agree, disagree, sizes = self.ticker_checks.get(symbol, [0, 0, 0])
        return {
            "sequence_gaps": self.sequence_gaps,
            "book_inconsistencies": self.inconsistencies.get(symbol, 0),
            "ticker_agrees": agree,
            "ticker_disagrees": disagree,
            "ticker_sizes_agree": sizes,
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/v2/conf/{name}" for name in (CURRENCY_MAP, *PAIR_LISTS)]

    def subscribe(self, symbols: list[str]) -> list[str]:
        """``conf`` first (sequence numbers and checksums), then book, trades and ticker of
        each symbol (Bitfinex allows 25 subscriptions per connection: 8 symbols)."""
        out = [json.dumps({"event": "conf", "flags": FLAGS})]
        for s in symbols:
            out.append(_book_request(s))
            out += [_request(c, s) for c in ("trades", "ticker")]
        return out

    def recover(self, symbols: list[str]) -> list[str]:
        """Unsubscribe each stale book by its channel id and subscribe it again: the new
        subscription starts with a snapshot."""
        out = []
        for s in symbols:
            chan = self.book_channels.get(s)
            if chan is not None:
                out.append(json.dumps({"event": "unsubscribe", "chanId": chan}))
            out.append(_book_request(s))
        return out

    def heartbeat(self) -> list[str]:
        return [PING]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        name = urlparse(url).path.rsplit("/", 1)[-1]
        if name == CURRENCY_MAP:
            found = {}
            for item in as_list(_first(exact_json(body), name), name):
                mapping = row(item, 2, "currency mapping")
                found[string(mapping[0], "currency")] = string(mapping[1], "symbol")
            self.currencies.update(found)
            for native in self.listings:
                self._list(native)
        elif name in PAIR_LISTS:
            pairs = [string(p, "pair") for p in as_list(_first(exact_json(body), name), name)]
            for pair in pairs:
                self.pairs.add(pair)
                self._list("t" + pair)
        return []

    def _list(self, native: str) -> None:
        listing = self.listing(native)
        if listing is not None:
            self.listings[native] = listing

    def listing(self, native: str) -> Listing | None:
        """The canonical listing of a trading symbol: ``tBASEQUOTE`` (three letters each)
        or ``tBASE:QUOTE``; a pair of ``F0`` codes is a perpetual settled in its quote."""
        pair = native[1:]
        if not native.startswith("t"):
            return None
        if ":" in pair:
            base, _, quote = pair.partition(":")
        elif len(pair) == 6:
            base, quote = pair[:3], pair[3:]
        else:
            return None
        try:
            if base.endswith("F0") and quote.endswith("F0"):
                b, q = self._code(base[:-2]), self._code(quote[:-2])
                return perp(VENUE, native, b, q, settle=q)
            return spot(VENUE, native, self._code(base), self._code(quote))
        except SymbologyError:
            return None

    def _code(self, code: str) -> str:
        return self.currencies.get(code, code)

    # --- events ------------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = bitfinex_book(text) if self.flags & SEQ_ALL else None  # most frames: one entry
        if scan is not None:
            chan, seq, levels, snapshot = scan
            info = self.channels.get(chan)
            if info is not None and info[0] == "book":  # else the ordinary path says why not
                if seq == self.sequence + 1:  # most frames: the next number, no call
                    self.sequence, events = seq, []
                else:
                    events = self._sequence(seq, ts_recv)
                try:
                    if snapshot:
                        events += self._book_snapshot(chan, info[1], levels, ts_recv)
                    else:
                        events += self._book_level(info[1], levels[0], ts_recv)
                except MalformedFrame as exc:
                    events += self.malformed_input(text, exc.on(info[1]), ts_recv)
                return events
        msg = exact_json(text)
        if isinstance(msg, dict):
            return self._event(msg, ts_recv)
        if not isinstance(msg, list) or len(msg) < 2:
            raise MalformedFrame("shape", "a frame must be an event object or a channel list")
        chan = _whole(msg[0], "channel id")
        body = msg[1:]
        out: list[Event] = []
        if self.flags & SEQ_ALL:
            if len(body) < 2:
                raise MalformedFrame("shape", "a channel message without its sequence number")
            seq = _whole(body.pop(), "sequence number")
            out += self._sequence(seq, ts_recv)
        try:
            out += self._message(chan, body, ts_recv)
        except MalformedFrame as exc:
            out += self.malformed_input(text, exc, ts_recv)
        return out

    def _sequence(self, seq: int, ts_recv: int) -> list[Event]:
        expected, self.sequence = self.sequence + 1, seq
        if expected == 0 or seq == expected:
            return []
        self.sequence_gaps += 1
        out: list[Event] = []
        for sync in self.books.values():
            out += sync.invalidate("sequence gap", ts_recv)
        return out

    def _event(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        event = msg.get("event")
        if event == "info":
            return self._info(msg, ts_recv)
        if event == "conf":
            if msg.get("status") != "OK":
                raise MalformedFrame("venue", f"conf refused: {str(msg)[:80]}", ())
            self.flags = _whole(field(msg, "flags"), "flags")
        elif event == "subscribed":
            channel = string(field(msg, "channel"), "channel")
            chan = _whole(field(msg, "chanId"), "chanId")
            symbol = string(field(msg, "symbol"), "symbol")
            if channel == "book" and msg.get("prec", "P0") != "P0":
                raise MalformedFrame("shape", f"book precision {msg.get('prec')!r:.10}", ())
            length = count(msg.get("len", 0), "len", digits=True) if channel == "book" else 0
            self.channels[chan] = (channel, symbol)
            if channel == "book":
                self.book_channels[symbol] = chan
                self.lengths[symbol] = length
                self._fresh.add(chan)
            self._list(symbol)
        elif event == "unsubscribed":
            info = self.channels.pop(_whole(field(msg, "chanId"), "chanId"), None)
            if info is not None and info[0] == "book":
                self.book_channels.pop(info[1], None)
        elif event == "error":
            why = f"error {msg.get('code')}: {str(msg.get('msg'))[:80]}"
            raise MalformedFrame("venue", why, ())
        elif not isinstance(event, str):
            raise MalformedFrame("shape", "an object without a string 'event'")
        return []  # pong, auth and the like

    def _info(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        """The greeting of a new connection (``version``): no channel, sequence or conf
        carries over, and every book waits for its new snapshot. Codes 20051/20061: the
        venue restarted or ended maintenance, so every book is resubscribed."""
        reason = "new connection" if "version" in msg else RESTART_CODES.get(str(msg.get("code")))
        if reason is None:
            return []
        if "version" in msg:
            self.flags, self.sequence = 0, -1
            self.channels.clear()
            self.book_channels.clear()
            self._fresh.clear()
        out: list[Event] = []
        for sync in self.books.values():
            out += sync.invalidate(reason, ts_recv)
        return out

    def _message(self, chan: int, body: list[Any], ts_recv: int) -> list[Event]:
        head = body[0]
        if type(head) is str and head == "hb":
            return []
        info = self.channels.get(chan)
        if info is None:
            why = f"message on channel {chan}, which no subscription named"
            raise MalformedFrame("symbol", why)
        channel, symbol = info
        if channel == "book":
            try:
                return self._book_message(chan, symbol, body, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(symbol) from None
        try:
            if channel == "trades":
                return self._trades(symbol, body, ts_recv)
            if channel == "ticker":
                self._ticker(symbol, body)
        except MalformedFrame as exc:
            raise exc.on() from None
        return []

    # --- book --------------------------------------------------------------------------

    def _book(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            texts = self.texts[symbol] = TextBook()
            sync = self.books[symbol] = BookSync(
                VENUE, symbol, checksum=lambda book: texts.checksum(book, (UNIT, UNIT))
            )
            sync.sink = self._emitted
        return sync

    def _book_message(self, chan: int, symbol: str, body: list[Any], ts_recv: int) -> list[Event]:
        if type(body[0]) is str:
            if body[0] != "cs" or len(body) != 2:
                raise MalformedFrame("shape", f"book message {str(body[0])[:10]!r}")
            return self._book(symbol).verify(_signed32(body[1], "checksum"), ts_recv)
        if len(body) != 1:
            raise MalformedFrame("shape", f"a book message has {len(body)} parts, needs 1")
        data = as_list(body[0], "book data")
        if data and not isinstance(data[0], list):
            return self._book_level(symbol, _entry(data), ts_recv)
        if chan not in self._fresh:
            raise MalformedFrame("inconsistent", "a second snapshot on one subscription")
        return self._book_snapshot(chan, symbol, [_entry(e) for e in data], ts_recv)

    def _book_snapshot(
        self, chan: int, symbol: str, levels: list[Level], ts_recv: int
    ) -> list[Event]:
        """The one snapshot a subscription starts with."""
        if chan not in self._fresh:
            raise MalformedFrame("inconsistent", "a second snapshot on one subscription")
        changes: tuple[LevelChange, ...] = tuple((s, p, q) for s, p, q, _t in levels)
        sync = self._book(symbol)
        texts = self.texts[symbol]
        self._fresh.discard(chan)
        texts.clear()
        texts.apply(levels)
        return sync.snapshot(Snapshot(changes), ts_recv)

    def _book_level(self, symbol: str, level: Level, ts_recv: int) -> list[Event]:
        """One entry of a live subscription: a level's new total, or its deletion."""
        side, price, size, text = level
        sync = self.books.get(symbol) or self._book(symbol)
        self._touched.add(symbol)
        if not size and sync.live and not sync.book.size_at(side, price):
            return self._inconsistent(sync, "deletion of a level the book lacks", ts_recv)
        texts = self.texts[symbol].sides[side]  # TextBook.apply of one level, inline
        if size:
            texts[price] = text
        else:
            texts.pop(price, None)
        out = sync.delta(Delta(((side, price, size),)), ts_recv)
        limit = self.lengths.get(symbol, 0)
        if sync.live and limit and sync.book.level_count(side) > limit:
            out += self._inconsistent(sync, f"more than {limit} levels a side", ts_recv)
        return out

    def _inconsistent(self, sync: BookSync, reason: str, ts_recv: int) -> list[Event]:
        """The book contradicts the venue's: an update was lost (counted as a gap)."""
        self.inconsistencies[sync.symbol] = self.inconsistencies.get(sync.symbol, 0) + 1
        sync.stats.gaps += 1
        return sync.invalidate(reason, ts_recv)

    # --- trades and tickers ------------------------------------------------------------

    def _trades(self, symbol: str, body: list[Any], ts_recv: int) -> list[Event]:
        if type(body[0]) is not str:
            as_list(body[0], "trades snapshot")
            return []  # the trades before the subscription
        if body[0] not in ("te", "tu") or len(body) != 2:
            raise MalformedFrame("shape", f"trades message {body[0][:10]!r}")
        r = row(body[1], 4, "trade")
        trade_id = _whole(r[0], "trade id")
        ts = _whole(r[1], "trade time")
        if ts > (1 << 63) // 1_000_000:
            raise MalformedFrame("time", "trade time is out of range")
        side, size = _signed(r[2], "trade amount")
        price = number_units(DECIMALS, r[3], "trade price", positive=True)
        seen = self._seen.setdefault(symbol, {})
        if trade_id in seen:
            return []
        seen[trade_id] = None
        if len(seen) > TRADES_REMEMBERED:
            del seen[next(iter(seen))]
        seq = self._trade_seq(symbol)
        return [
            Trade(VENUE, symbol, seq, str(trade_id), price, size, side, ts * 1_000_000, ts_recv)
        ]

    def _ticker(self, symbol: str, body: list[Any]) -> None:
        if len(body) != 1:
            raise MalformedFrame("shape", f"a ticker message has {len(body)} parts, needs 1")
        v = row(body[0], 4, "ticker")
        bid = number_units(DECIMALS, v[0], "ticker bid", positive=True)
        ask = number_units(DECIMALS, v[2], "ticker ask", positive=True)
        sizes = (
            rounded(number(v[1], "bid size"), DECIMALS, "bid size"),
            rounded(number(v[3], "ask size"), DECIMALS, "ask size"),
        )
        sync = self.books.get(symbol)
        if sync is None or not sync.live:
            return
        bids, asks = sync.book.depth(0, TICKER_LEVELS), sync.book.depth(1, TICKER_LEVELS)
        top = (bids[0][0] if bids else 0, asks[0][0] if asks else 0)
        totals = (sum(q for _p, q in bids), sum(q for _p, q in asks))
        checks = self.ticker_checks.setdefault(symbol, [0, 0, 0])
        checks[(bid, ask) != top] += 1
        checks[2] += (bid, ask, *sizes) == (*top, *totals)


def _request(channel: str, symbol: str) -> str:
    return json.dumps({"event": "subscribe", "channel": channel, "symbol": symbol})


def _book_request(symbol: str) -> str:
    return json.dumps(
        {
            "event": "subscribe",
            "channel": "book",
            "symbol": symbol,
            "prec": "P0",
            "freq": "F0",
            "len": BOOK_LENGTH,
        }
    )


def _first(value: Any, what: str) -> Any:
    """The one list a ``conf`` answer wraps its payload in (``[[...]]``)."""
    return row(value, 1, what)[0]


def _whole(value: Any, what: str) -> int:
    """A JSON integer (not a string) as a non-negative int64."""
    text = number(value, what)
    if not text.isdigit():
        raise MalformedFrame("shape", f"{what} {text[:24]!r} is not a non-negative integer")
    return count(int(text), what)


def _signed32(value: Any, what: str) -> int:
    text = number(value, what)
    digits = text[1:] if text.startswith("-") else text
    if not digits.isdigit() or len(digits) > 10:
        raise MalformedFrame("shape", f"{what} {text[:24]!r} is not a 32-bit integer")
    n = int(text)
    if not -INT32 <= n < INT32:
        raise MalformedFrame("range", f"{what} {n} is not a signed 32-bit integer")
    return n


def _signed(value: Any, what: str) -> tuple[int, int]:
    """A signed amount as (side, units): positive is the bid (a buyer), negative the ask."""
    text = number(value, what)
    if text.startswith("-"):
        return SELL, number_units(DECIMALS, Number(text[1:]), what, positive=True)
    return BUY, number_units(DECIMALS, text, what, positive=True)


def _entry(value: Any) -> Level:
    """``[price, count, amount]``: count 0 deletes the level (amount's sign names the side)."""
    r = row(value, 3, "book entry")
    price = number_units(DECIMALS, r[0], "price", positive=True)
    orders = _whole(r[1], "count")
    side, size = _signed(r[2], "amount")
    if not orders and size != UNITS_OF_ONE:
        raise MalformedFrame("number", f"a deletion's amount must be 1 or -1, got {r[2][:24]!r}")
    return side, price, size if orders else 0, f"{r[0]}:{r[2]}"
