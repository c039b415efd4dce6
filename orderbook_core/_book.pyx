# cython: language_level=3
"""Compiled L2 book.

Prices are int64 ticks, sizes int64 lots. Both sides are kept in price-indexed
ladders (ladder.hpp: a flat array over a dense window of prices with a bitmap
beside it, sparse prices in ordered maps) keyed so that the best price is always
the first key (bid prices are stored negated): setting a level is an array write,
reading the top O(1) after every update, and ``depth`` a walk from the front,
never a sort.
"""

from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcpy, memset
from libcpp.vector cimport vector

from orderbook_core._engine_records cimport pair
from orderbook_core._l3 cimport Delta, crc32_update, take_delta_list
from orderbook_core.ladder cimport LadderCursor
from orderbook_core._l3 import top_checksum
from orderbook_core.errors import (
    DuplicateOrderId,
    InvalidPrice,
    InvalidSize,
    OrderNotFound,
)

include "_consts.pxi"


cdef inline int64_t _key(int side, int64_t price):
    return -price if side == 0 else price


cdef char _PAIRS[200]
"""The two digits of 00 to 99, in order."""
for _k in range(100):
    _PAIRS[2 * _k] = 48 + _k // 10
    _PAIRS[2 * _k + 1] = 48 + _k % 10


cdef Py_ssize_t _put_scaled(char* out, int64_t value, int shift) noexcept:
    """Write the decimal digits of ``value * 10**shift`` (a negative shift drops digits,
    rounding down) for ``value >= 0`` at ``out``, which has room for 19 digits and
    ``max(shift, 0)`` zeros; return how many were written."""
    cdef char tmp[24]
    cdef Py_ssize_t n = 0, w = 0, k
    cdef int64_t v = value
    if shift < 0:
        k = -shift
        while k > 0 and v:
            v //= 10
            k -= 1
    if v == 0:
        out[0] = 48
        return 1
    while v >= 100:  # two digits a division, from the pair table
        k = 2 * (v % 100)
        v //= 100
        tmp[n] = _PAIRS[k + 1]
        tmp[n + 1] = _PAIRS[k]
        n += 2
    while v:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    while n:
        n -= 1
        out[w] = tmp[n]
        w += 1
    if shift > 0:
        memset(out + w, 48, shift)
        w += shift
    return w


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL


cdef str _sent(dict texts, int side, int64_t price, int64_t size, object fallback):
    """The text sent for a level, else the fallback's."""
    cdef object text = texts.get(price)
    if type(text) is not str:
        text = fallback(side, price, size)
        if type(text) is not str:
            raise TypeError(f"the checksum text of level {price} is not a str: {text!r:.40}")
    return <str>text


cdef class L2Book:
    """One aggregate size per price level, both sides."""

    def __cinit__(self, bint emit_deltas=False):
        self.emit_deltas = emit_deltas
        self.seq = 0

    cdef LevelMap* _side(self, int side) except NULL:
        if side == 0:
            return &self._bids
        if side == 1:
            return &self._asks
        raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")

    cdef int _set(self, int side, int64_t price, int64_t size) except -1:
        cdef LevelMap* levels = self._side(side)
        cdef int64_t key = _key(side, price)
        cdef int64_t old
        cdef int action
        cdef Delta d
        if size < 0:
            raise InvalidSize(f"negative size {size} at price {price}", size=size, side=side, price=price)
        if price <= 0:
            raise InvalidPrice(f"non-positive price {price}", price=price, side=side)
        old = levels.set(key, size)
        if size == 0:
            if old == 0:
                return 0
            action = DELETE
        else:
            action = ADD if old == 0 else UPDATE
        if self.emit_deltas:
            self.seq += 1
            d.action = action
            d.side = side
            d.price = price
            d.size = size
            d.order_id = 0
            d.flags = 0
            d.seq = self.seq
            self._deltas.push_back(d)
        return action

    cdef void _mark_last(self) noexcept:
        cdef Delta* last
        if self.emit_deltas and self._deltas.size():
            last = &self._deltas.back()
            last.flags |= F_LAST

    def set(self, int side, int64_t price, int64_t size):
        """Set the absolute size at a level (0 removes it); return the Action value or 0 for no change."""
        cdef int action = self._set(side, price, size)
        self._mark_last()
        return action

    def apply(self, updates):
        """Apply ``(side, price, size)`` tuples as one atomic change; return how many changed the book."""
        cdef int changed = 0
        cdef tuple u
        try:
            for u in updates:
                if self._set(<int>u[0], <int64_t>u[1], <int64_t>u[2]) != 0:
                    changed += 1
        finally:
            self._mark_last()
        return changed

    def apply_batch(self, const int64_t[:] ops, int64_t[:] tops=None):
        """Apply int64 triples ``(side, price, size)`` with no Python-level loop.

        If ``tops`` is given (4 int64 per update), the best bid price, bid
        size, ask price and ask size after each update are written to it
        (0, 0 for an empty side). On a bad update raises its typed error with
        ``.index``; the updates before it stay applied. Returns the count applied.
        """
        cdef Py_ssize_t n = ops.shape[0] // 3, i
        cdef bint want_tops = tops is not None
        if ops.shape[0] % 3:
            raise ValueError(f"batch length {ops.shape[0]} is not a multiple of 3")
        if want_tops and tops.shape[0] < 4 * n:
            raise ValueError(f"tops needs {4 * n} slots, has {tops.shape[0]}")
        for i in range(n):
            try:
                self._set(<int>ops[3 * i], ops[3 * i + 1], ops[3 * i + 2])
            except Exception as exc:
                exc.index = i
                self._mark_last()
                raise
            if want_tops:
                if self._bids.empty():
                    tops[4 * i] = 0
                    tops[4 * i + 1] = 0
                else:
                    tops[4 * i] = -self._bids.first_key()
                    tops[4 * i + 1] = self._bids.first_value()
                if self._asks.empty():
                    tops[4 * i + 2] = 0
                    tops[4 * i + 3] = 0
                else:
                    tops[4 * i + 2] = self._asks.first_key()
                    tops[4 * i + 3] = self._asks.first_value()
        self._mark_last()
        return n

    def take_deltas(self):
        """Deltas since the last call: ``(action, side, price, size, 0, flags, seq)``."""
        return take_delta_list(&self._deltas)

    def size_at(self, int side, int64_t price):
        return self._side(side).get(_key(side, price))

    def best_bid(self):
        if self._bids.empty():
            return None
        return (-self._bids.first_key(), self._bids.first_value())

    def best_ask(self):
        if self._asks.empty():
            return None
        return (self._asks.first_key(), self._asks.first_value())

    def top(self):
        """(best bid, its size, best ask, its size), 0, 0 for an empty side: both bests in
        one call (the venues that compare their tickers with the book read it per update)."""
        cdef int64_t bp = 0, bs = 0, ap = 0, asz = 0
        if not self._bids.empty():
            bp, bs = -self._bids.first_key(), self._bids.first_value()
        if not self._asks.empty():
            ap, asz = self._asks.first_key(), self._asks.first_value()
        return (bp, bs, ap, asz)

    def depth(self, int side, int n=0):
        """Top ``n`` levels of a side, best first, as ``(price, size)``; ``n <= 0`` means all."""
        cdef LadderCursor it = self._side(side).begin()
        cdef list out = []
        cdef int64_t sign = -1 if side == 0 else 1
        while not it.done() and (n <= 0 or len(out) < n):
            out.append(pair(sign * it.key(), it.value()))  # untracked: no cycle
            it.next()
        return out

    def snapshot(self, int n=0):
        """``(bids, asks)`` as ``(price, size)`` lists, top ``n`` (all if 0)."""
        return self.depth(0, n), self.depth(1, n)

    def snapshot_deltas(self, int n=0):
        """The book (top ``n`` levels, all if 0) as deltas: CLEAR, then one ADD per level,
        all flagged F_SNAPSHOT, the last also F_LAST; each stamped with the book's seq."""
        out = [(CLEAR, BID, 0, 0, 0, F_SNAPSHOT, self.seq)]
        for side in (0, 1):
            out.extend((ADD, side, p, s, 0, F_SNAPSHOT, self.seq) for p, s in self.depth(side, n))
        last = out[len(out) - 1]  # no negative index: the build disables wraparound
        out[len(out) - 1] = last[:5] + (F_SNAPSHOT | F_LAST, last[6])
        return out

    def checksum(self, int n=10):
        """CRC32 of the top ``n`` levels (orderbook_core.types.checksum_text)."""
        return top_checksum(self.depth(0, n), self.depth(1, n))

    def digits_checksum(self, int n=10, int price_shift=0, int size_shift=0):
        """CRC32 of the top ``n`` asks then the top ``n`` bids, best first, each level as its
        price then its size in bare decimal digits, after scaling each by 10**shift (a
        negative shift drops digits): Kraken's book checksum over integer units."""
        cdef vector[char] buf
        cdef LadderCursor it
        cdef int side, i
        cdef int64_t sign
        cdef Py_ssize_t used = 0
        cdef size_t levels = 0
        if n > 0:
            levels = min(<size_t>n, self._bids.size()) + min(<size_t>n, self._asks.size())
        # room for every number at its longest: 19 digits and the shift's zeros
        buf.resize(levels * (38 + max(price_shift, 0) + max(size_shift, 0)) + 1)
        for side in (1, 0):
            sign = -1 if side == 0 else 1
            it = self._side(side).begin()
            i = 0
            while not it.done() and i < n:
                used += _put_scaled(buf.data() + used, sign * it.key(), price_shift)
                used += _put_scaled(buf.data() + used, it.value(), size_shift)
                it.next()
                i += 1
        return crc32_update(0, <const unsigned char*>buf.data(), used)

    def text_checksum(self, dict bid_texts, dict ask_texts, int n, fallback):
        """Signed CRC32 of the top ``n`` (all if 0) bids and asks interleaved (bid, ask,
        ...; then the longer side's rest), each level the text its venue sent (``bid_texts`` /
        ``ask_texts``: price -> "price:size"), joined by ":", over the UTF-8: OKX's and
        Bitget's checksum. A level with no text is ``fallback(side, price, size)``."""
        cdef list parts = []
        cdef LadderCursor bids = self._bids.begin()
        cdef LadderCursor asks = self._asks.begin()
        cdef int i = 0
        cdef Py_ssize_t k, size, length = 0, at = 0
        cdef const char* chars
        cdef vector[char] buf
        cdef uint32_t crc
        while (n <= 0 or i < n) and not (bids.done() and asks.done()):  # n <= 0: all
            if not bids.done():
                parts.append(_sent(bid_texts, 0, -bids.key(), bids.value(), fallback))
                bids.next()
            if not asks.done():
                parts.append(_sent(ask_texts, 1, asks.key(), asks.value(), fallback))
                asks.next()
            i += 1
        for text in parts:  # the UTF-8 of an ASCII str is its characters, read in place
            PyUnicode_AsUTF8AndSize(text, &size)
            length += size + 1
        buf.resize(length + 1)
        for k in range(len(parts)):
            chars = PyUnicode_AsUTF8AndSize(parts[k], &size)
            if k:
                buf[at] = 58  # ":"
                at += 1
            memcpy(buf.data() + at, chars, size)
            at += size
        crc = crc32_update(0, <const unsigned char*>buf.data(), at)
        return <int64_t>crc - 4294967296 if crc >= 2147483648U else <int64_t>crc

    def trim(self, int n):
        """Remove the levels past the best ``n`` (``n >= 1``) of each side; return them as
        ``(side, price, 0)`` changes, bids then asks, each side best first."""
        cdef LevelMap* levels
        cdef LadderCursor it
        cdef vector[int64_t] prices
        cdef int side, i
        cdef size_t k
        cdef int64_t sign
        cdef list out = []
        if n < 1:
            raise ValueError(f"trim keeps n >= 1 levels, got {n}")
        for side in (0, 1):
            levels = self._side(side)
            if levels.size() <= <size_t>n:
                continue
            sign = -1 if side == 0 else 1
            prices.clear()
            it = levels.begin()
            i = 0
            while not it.done():
                if i >= n:
                    prices.push_back(sign * it.key())
                it.next()
                i += 1
            for k in range(prices.size()):
                self._set(side, prices[k], 0)
                out.append((side, prices[k], 0))
        self._mark_last()
        return out

    def level_count(self, int side):
        return self._side(side).size()

    def is_crossed(self):
        if self._bids.empty() or self._asks.empty():
            return False
        return -self._bids.first_key() >= self._asks.first_key()

    def clear(self):
        cdef Delta d
        self._bids.clear()
        self._asks.clear()
        if self.emit_deltas:
            self.seq += 1
            d.action = CLEAR
            d.side = 0
            d.price = 0
            d.size = 0
            d.order_id = 0
            d.flags = F_LAST
            d.seq = self.seq
            self._deltas.push_back(d)
