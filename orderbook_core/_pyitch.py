"""Pure-Python reference implementation of orderbook_core._itch (ITCH 5.0 replay)."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from orderbook_core._pyl3 import L3Book
from orderbook_core.errors import BookError, ItchFormatError, UnknownStockLocate, located
from orderbook_core.itch_spec import BOOK_MESSAGES, MESSAGE_LENGTHS

_U16 = struct.Struct(">H")
_ADD = struct.Struct(">QcI8sI")  # at 11: ref, side, shares, stock, price
_TAKE = struct.Struct(">QI")  # at 11: ref, shares
_REF = struct.Struct(">Q")  # at 11: ref
_REPLACE = struct.Struct(">QQII")  # at 11: old ref, new ref, shares, price
_EXEC = struct.Struct(">QIQcI")  # at 11: ref, shares, match, printable, price (C)
_P_TRADE = struct.Struct(">cI8sIQ")  # at 19: side, shares, stock, price, match
_Q_CROSS = struct.Struct(">Q8sIQ")  # at 11: shares, stock, price, match

Print = tuple[str, int, int, int, int, int]
"""(symbol, timestamp, match number, price, shares, aggressor side: 0 buy, 1 sell, 2 none)"""


class ItchReplay:
    """Replay ITCH 5.0 bytes into one L3 book per symbol (optionally only some symbols)."""

    def __init__(
        self, symbols: Iterable[str] | None = None, trades: bool = False, orders: bool = False
    ) -> None:
        self._filter = None if symbols is None else frozenset(symbols)
        self._tail = b""
        self.messages = 0
        self.offset = 0
        self.timestamp = 0
        self.ignored = 0
        self.errors = 0
        self._names: dict[int, str] = {}
        self._books: dict[int, L3Book] = {}
        self._status: dict[int, bool] = {}  # locate -> tracked?
        self._state: dict[int, str] = {}
        self._counts: dict[str, int] = {}
        self._execs: dict[int, tuple[int, int]] = {}
        self.keep_trades = bool(trades)
        self.keep_orders = bool(orders)
        self._prints: list[Print] = []

    def _register(self, locate: int, stock: bytes) -> None:
        name = stock.rstrip(b" ").decode("ascii", "replace")
        self._names[locate] = name
        tracked = self._filter is None or name in self._filter
        self._status[locate] = tracked
        if tracked and locate not in self._books:
            self._books[locate] = L3Book(emit_deltas=self.keep_orders, allow_cross=True)

    def _message(self, m: bytes) -> None:
        t = chr(m[0])
        locate = _U16.unpack_from(m, 1)[0]
        self._counts[t] = self._counts.get(t, 0) + 1
        self.timestamp = int.from_bytes(m[5:11], "big")
        if t in "AF" and locate not in self._status:
            self._register(locate, m[24:32])
        elif t == "R":
            self._register(locate, m[11:19])
            return
        elif t == "H":
            if locate not in self._status:
                self._register(locate, m[11:19])
            self._state[locate] = chr(m[19])
            return
        tracked = self._status.get(locate)
        if self.keep_trades and tracked and t in "PQ":
            self._trade(t, locate, m)
            return
        if t not in BOOK_MESSAGES:
            return
        if tracked is False:
            self.ignored += 1
            return
        book = self._books.get(locate)
        if book is None:
            raise UnknownStockLocate(locate, -1, t)
        if t in "AF":
            ref, side, shares, _stock, price = _ADD.unpack_from(m, 11)
            book._add(ref, 0 if side == b"B" else 1, price, shares)
        elif t in "EC":
            self._execute(t, locate, book, m)
        elif t == "X":
            ref, shares = _TAKE.unpack_from(m, 11)
            book._take(ref, shares)
        elif t == "D":
            book._delete(_REF.unpack_from(m, 11)[0])
        else:
            old, new, shares, price = _REPLACE.unpack_from(m, 11)
            book._replace(old, new, price, shares)

    def _execute(self, t: str, locate: int, book: L3Book, m: bytes) -> None:
        ref, shares = _TAKE.unpack_from(m, 11)
        side = price = 0
        if self.keep_trades:
            order = book._find(ref)
            side = 1 if order.side == 0 else 0  # the resting order is the passive side
            price = order.price
        book._take(ref, shares)
        count, total = self._execs.get(locate, (0, 0))
        self._execs[locate] = (count + 1, total + shares)
        if not self.keep_trades:
            return
        if t == "E":
            match = _REF.unpack_from(m, 23)[0]
        else:
            _ref, _shares, match, printable, price = _EXEC.unpack_from(m, 11)
            if printable != b"Y":
                return  # counted elsewhere (e.g. in a cross): not a print
        self._prints.append((self._names[locate], self.timestamp, match, price, shares, side))

    def _trade(self, t: str, locate: int, m: bytes) -> None:
        if t == "P":
            side_b, shares, _stock, price, match = _P_TRADE.unpack_from(m, 19)
            side = 1 if side_b == b"B" else 0
        else:
            shares, _stock, price, match = _Q_CROSS.unpack_from(m, 11)
            side = 2
        if shares > 0:
            self._prints.append((self._names[locate], self.timestamp, match, price, shares, side))

    def take_trades(self) -> list[Print]:
        out, self._prints = self._prints, []
        return out

    def feed(self, data: bytes, limit: int = -1) -> int:
        buf = self._tail + bytes(data)
        pos, done, n = 0, 0, len(buf)
        while pos + 2 <= n and (limit < 0 or self.messages < limit):
            length = _U16.unpack_from(buf, pos)[0]
            if pos + 2 + length > n:
                break
            at = self.offset + pos
            t = chr(buf[pos + 2]) if length else ""
            expected = MESSAGE_LENGTHS.get(t)
            err: Exception | None = None
            if length == 0:
                err = ItchFormatError(f"zero-length message at byte {at}", at, "")
            elif expected is None:
                err = ItchFormatError(f"unknown ITCH message type {t!r} at byte {at}", at, t)
            elif length != expected:
                err = ItchFormatError(
                    f"ITCH {t!r} message at byte {at} has length {length}, "
                    f"the spec says {expected}",
                    at,
                    t,
                )
            else:
                try:
                    self._message(buf[pos + 2 : pos + 2 + length])
                except UnknownStockLocate as exc:
                    self._counts[t] -= 1
                    err = UnknownStockLocate(exc.locate, at, t)
                except (BookError, KeyError, ValueError) as exc:
                    self._counts[t] -= 1
                    err = located(exc, f"ITCH {t!r} message at byte {at}", at, t)
            pos += 2 + length
            if err is not None:
                self.errors += 1
                self._tail = buf[pos:]
                self.offset += pos
                raise err
            self.messages += 1
            done += 1
        self._tail = buf[pos:]
        self.offset += pos
        return done

    def finish(self) -> None:
        if self._tail:
            t = chr(self._tail[2]) if len(self._tail) > 2 else ""
            raise ItchFormatError(
                f"truncated ITCH input: {len(self._tail)} byte(s) of an incomplete message "
                f"{t!r} at byte {self.offset}",
                self.offset,
                t,
            )

    def book(self, symbol: str) -> L3Book:
        for locate, name in sorted(self._names.items()):
            if name == symbol and locate in self._books:
                return self._books[locate]
        raise KeyError(f"no book for symbol {symbol!r}")

    def symbols(self) -> list[str]:
        return [self._names[loc] for loc in sorted(self._books)]

    def trading_state(self, symbol: str) -> str | None:
        for locate, name in sorted(self._names.items()):
            if name == symbol:
                return self._state.get(locate)
        return None

    def executions(self, symbol: str) -> tuple[int, int]:
        for locate, name in sorted(self._names.items()):
            if name == symbol:
                return self._execs.get(locate, (0, 0))
        return (0, 0)

    def counts(self) -> dict[str, int]:
        return {t: c for t, c in sorted(self._counts.items(), key=lambda kv: ord(kv[0])) if c}
