# cython: language_level=3
"""Compiled order-level (L3) book: price-time queues, per-level size and count.

Orders live in a hash map keyed by order id; each price level is an ordered
map entry holding an intrusive doubly linked queue of its orders (by id), so
add, reduce, execute and delete are O(1) plus one ordered-map step, and the
best level is always ``begin()``.
"""

from cython.operator cimport dereference as deref, preincrement as inc
from libc.stdint cimport int64_t, uint32_t
from libcpp.pair cimport pair
from libcpp.vector cimport vector

from orderbook_core.errors import (
    DuplicateOrderId,
    InvalidOrderId,
    InvalidPrice,
    InvalidSize,
    OrderNotFound,
    OrdersCrossed,
)

ctypedef pair[int64_t, Level] LevelEntry

include "_consts.pxi"

cdef uint32_t _CRC_TABLE[256]


cdef void _init_crc() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            c = (0xEDB88320U ^ (c >> 1)) if (c & 1) else (c >> 1)
        _CRC_TABLE[i] = c


_init_crc()


cdef uint32_t crc32_update(uint32_t crc, const unsigned char* data, size_t n) noexcept nogil:
    cdef size_t i
    crc = crc ^ 0xFFFFFFFFU
    for i in range(n):
        crc = _CRC_TABLE[(crc ^ data[i]) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFU


cdef size_t _put_int(char* out, int64_t value) noexcept:
    """Write ``value`` in decimal at ``out``; return the number of bytes written."""
    cdef char tmp[24]
    cdef size_t n = 0, i
    cdef bint neg = value < 0
    cdef unsigned long long v = <unsigned long long>(-value if neg else value)
    if v == 0:
        tmp[n] = 48
        n += 1
    while v:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    i = 0
    if neg:
        out[0] = 45
        i = 1
    while n:
        n -= 1
        out[i] = tmp[n]
        i += 1
    return i


cdef list take_delta_list(vector[Delta]* deltas):
    """Turn recorded deltas into tuples and forget them."""
    cdef list out = []
    cdef size_t i
    for i in range(deltas.size()):
        d = deltas[0][i]
        out.append((d.action, d.side, d.price, d.size, d.order_id, d.flags, d.seq))
    deltas.clear()
    return out


def top_checksum(list bids, list asks):
    """CRC32 of the canonical text of top levels (see orderbook_core.types.checksum_text)."""
    cdef vector[char] buf
    cdef char num[48]
    cdef size_t i, k, n
    cdef tuple level
    for i in range(max(len(bids), len(asks))):
        for levels in (bids, asks):
            if i < len(levels):
                level = levels[i]
                n = _put_int(num, level[0])
                num[n] = 58
                n += 1
                n += _put_int(num + n, level[1])
                num[n] = 58
                n += 1
                for k in range(n):
                    buf.push_back(num[k])
    if buf.size() == 0:
        return crc32_update(0, NULL, 0)
    return crc32_update(0, <const unsigned char*>buf.data(), buf.size() - 1)


cdef class L3Book:
    """Individual orders in price-time queues; L2 views (size, count) per level."""

    def __cinit__(self, bint emit_deltas=False, bint allow_cross=False):
        self.emit_deltas = emit_deltas
        self.allow_cross = allow_cross
        self.seq = 0

    cdef QueueMap* side_map(self, int side) except NULL:
        if side == 0:
            return &self._bids
        if side == 1:
            return &self._asks
        raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")

    cdef Order* find(self, int64_t order_id) except NULL:
        cdef int64_t* slot = self._slots.find(order_id)
        if slot == NULL:
            raise OrderNotFound(f"order id {order_id} is not in the book", order_id=order_id)
        return &self._pool[slot[0]]

    cdef Level* best_level(self, int side) noexcept:
        cdef QueueMap* levels = &self._bids if side == 0 else &self._asks
        if levels.empty():
            return NULL
        return &deref(levels.begin()).second

    cdef int record(self, int action, int side, int64_t price, int64_t size,
                    int64_t order_id) except -1:
        cdef Delta d
        if not self.emit_deltas:
            return 0
        self.seq += 1
        d.action = action
        d.side = side
        d.price = price
        d.size = size
        d.order_id = order_id
        d.flags = 0
        d.seq = self.seq
        self._deltas.push_back(d)
        return 0

    cdef void mark_last(self) noexcept:
        cdef Delta* last
        if self.emit_deltas and self._deltas.size():
            last = &self._deltas.back()
            last.flags |= F_LAST

    cdef int check_cross(self, int64_t order_id, int side, int64_t price) except -1:
        """Refuse an order that would lock or cross the opposite best (unless allowed)."""
        cdef QueueMap* other = &self._asks if side == 0 else &self._bids
        cdef int64_t best
        if self.allow_cross or other.empty():
            return 0
        best = deref(other.begin()).first
        if (side == 0 and price >= best) or (side == 1 and price <= -best):
            raise OrdersCrossed(
                f"order {order_id}: {'bid' if side == 0 else 'ask'} at {price} would cross "
                f"the best {'ask' if side == 0 else 'bid'} {best if side == 0 else -best}",
                order_id=order_id, side=side, price=price, best=best if side == 0 else -best)
        return 0

    cdef int c_add(self, int64_t order_id, int side, int64_t price, int64_t size) except -1:
        cdef QueueMap* levels = self.side_map(side)
        cdef int64_t slot
        cdef int64_t key = side_key(side, price)
        cdef QueueMap.iterator it
        cdef Order order
        cdef Level level
        cdef Level* lvl
        if order_id == NO_ORDER:
            raise InvalidOrderId(f"order id {order_id} is reserved", order_id=order_id)
        if size <= 0:
            raise InvalidSize(f"order {order_id}: size must be positive, got {size}",
                              size=size, side=side, price=price, order_id=order_id)
        if price <= 0:
            raise InvalidPrice(f"order {order_id}: price must be positive, got {price}",
                               price=price, side=side, order_id=order_id)
        if self._slots.contains(order_id):
            raise DuplicateOrderId(f"order id {order_id} is already in the book", order_id=order_id)
        self.check_cross(order_id, side, price)
        order.order_id = order_id
        order.price = price
        order.size = size
        order.side = side
        order.next = -1
        if self._free.empty():
            slot = self._pool.size()
            self._pool.push_back(order)
        else:
            slot = self._free.back()
            self._free.pop_back()
        it = levels.find(key)
        if it == levels.end():
            order.prev = -1
            level.size = size
            level.count = 1
            level.head = slot
            level.tail = slot
            order.level = &deref(levels.insert(LevelEntry(key, level)).first).second
        else:
            lvl = &deref(it).second
            order.prev = lvl.tail
            self._pool[lvl.tail].next = slot
            lvl.tail = slot
            lvl.size += size
            lvl.count += 1
            order.level = lvl
        self._pool[slot] = order
        self._slots.put(order_id, slot)
        self.record(ADD, side, price, size, order_id)
        return 0

    cdef int c_remove(self, Order* order) except -1:
        """Unlink an order from its level and forget it (no delta)."""
        cdef Level* lvl = order.level
        cdef int64_t slot = order - &self._pool[0]
        if order.prev >= 0:
            self._pool[order.prev].next = order.next
        else:
            lvl.head = order.next
        if order.next >= 0:
            self._pool[order.next].prev = order.prev
        else:
            lvl.tail = order.prev
        lvl.size -= order.size
        lvl.count -= 1
        if lvl.count == 0:
            self.side_map(order.side).erase(side_key(order.side, order.price))
        self._slots.erase(order.order_id)
        self._free.push_back(slot)
        return 0

    cdef int c_set_size(self, Order* order, int64_t size) except -1:
        """Change an order's size in place, keeping its queue position."""
        order.level.size += size - order.size
        order.size = size
        self.record(UPDATE, order.side, order.price, size, order.order_id)
        return 0

    cdef int c_take(self, int64_t order_id, int64_t size) except -1:
        """Remove ``size`` lots from an order (reduce or execute); delete it at zero."""
        cdef Order* order = self.find(order_id)
        if size <= 0 or size > order.size:
            raise InvalidSize(
                f"order {order_id}: cannot remove {size} of its {order.size} lots",
                size=size, side=order.side, price=order.price, order_id=order_id)
        if size == order.size:
            self.record(DELETE, order.side, order.price, 0, order_id)
            return self.c_remove(order)
        return self.c_set_size(order, order.size - size)

    cdef int c_delete(self, int64_t order_id) except -1:
        cdef Order* order = self.find(order_id)
        self.record(DELETE, order.side, order.price, 0, order_id)
        return self.c_remove(order)

    cdef int c_replace(self, int64_t order_id, int64_t new_id, int64_t price,
                       int64_t size) except -1:
        """Cancel ``order_id`` and add ``new_id`` on the same side (loses priority).

        Everything is checked before the book changes, so a refused replace
        leaves the old order exactly where it was.
        """
        cdef Order* order = self.find(order_id)
        cdef int side = order.side
        if size <= 0:
            raise InvalidSize(f"replace of {order_id}: size must be positive, got {size}",
                              size=size, side=side, price=price, order_id=order_id)
        if price <= 0:
            raise InvalidPrice(f"replace of {order_id}: price must be positive, got {price}",
                               price=price, side=side, order_id=order_id)
        if new_id != order_id and self._slots.contains(new_id):
            raise DuplicateOrderId(f"replace of {order_id}: new id {new_id} is already in the book",
                                   order_id=new_id)
        self.check_cross(new_id, side, price)
        self.record(DELETE, side, order.price, 0, order_id)
        self.c_remove(order)
        return self.c_add(new_id, side, price, size)

    # --- Python API -------------------------------------------------------------------

    def add(self, int64_t order_id, int side, int64_t price, int64_t size):
        """Add a new order at the back of its price level's queue."""
        self.c_add(order_id, side, price, size)
        self.mark_last()

    def reduce(self, int64_t order_id, int64_t size):
        """Cancel ``size`` lots of an order (it keeps its place); delete it at zero."""
        self.c_take(order_id, size)
        self.mark_last()

    def execute(self, int64_t order_id, int64_t size):
        """Execute ``size`` lots of a resting order; return ``(price, size)`` executed."""
        cdef Order* order = self.find(order_id)
        cdef int64_t price = order.price
        self.c_take(order_id, size)
        self.mark_last()
        return (price, size)

    def delete(self, int64_t order_id):
        """Remove an order."""
        self.c_delete(order_id)
        self.mark_last()

    def replace(self, int64_t order_id, int64_t new_order_id, int64_t price, int64_t size):
        """Replace an order by a new one on the same side, at the back of its queue."""
        self.c_replace(order_id, new_order_id, price, size)
        self.mark_last()

    def apply_batch(self, const int64_t[:] ops):
        """Apply operations packed as int64 quintuples ``(op, order_id, arg, price, size)``.

        ``op``: 1 add (arg = side), 2 reduce, 3 delete, 4 execute, 5 replace
        (arg = new order id). Runs without a Python-level loop. On a bad
        operation raises its typed error with ``.index`` set; the operations
        before it stay applied. Returns the number of operations applied.
        """
        cdef Py_ssize_t n = ops.shape[0] // 5, i
        cdef int64_t op
        if ops.shape[0] % 5:
            raise ValueError(f"batch length {ops.shape[0]} is not a multiple of 5")
        for i in range(n):
            op = ops[5 * i]
            try:
                if op == OP_ADD:
                    self.c_add(ops[5 * i + 1], <int>ops[5 * i + 2], ops[5 * i + 3], ops[5 * i + 4])
                elif op == OP_REDUCE or op == OP_EXECUTE:
                    self.c_take(ops[5 * i + 1], ops[5 * i + 4])
                elif op == OP_DELETE:
                    self.c_delete(ops[5 * i + 1])
                elif op == OP_REPLACE:
                    self.c_replace(ops[5 * i + 1], ops[5 * i + 2], ops[5 * i + 3], ops[5 * i + 4])
                else:
                    raise ValueError(f"unknown batch op {op}")
            except Exception as exc:
                exc.index = i
                self.mark_last()
                raise
        self.mark_last()
        return n

    def take_deltas(self):
        """Return and forget the deltas recorded since the last call (needs ``emit_deltas``).

        Each delta is ``(action, side, price, size, order_id, flags, seq)``;
        ``size`` is the order's remaining size (0 on DELETE).
        """
        return take_delta_list(&self._deltas)

    def clear(self):
        self._slots.clear()
        self._pool.clear()
        self._free.clear()
        self._bids.clear()
        self._asks.clear()
        self.record(CLEAR, 0, 0, 0, 0)
        self.mark_last()

    def order(self, int64_t order_id):
        """``(side, price, size)`` of a resting order, or None."""
        cdef int64_t* slot = self._slots.find(order_id)
        if slot == NULL:
            return None
        return (self._pool[slot[0]].side, self._pool[slot[0]].price, self._pool[slot[0]].size)

    def order_ids(self, int side, int64_t price):
        """Order ids at one level in queue (time) order."""
        cdef QueueMap* levels = self.side_map(side)
        cdef QueueMap.iterator it = levels.find(side_key(side, price))
        cdef list out = []
        cdef int64_t slot
        if it == levels.end():
            return out
        slot = deref(it).second.head
        while slot >= 0:
            out.append(self._pool[slot].order_id)
            slot = self._pool[slot].next
        return out

    def best_bid(self):
        if self._bids.empty():
            return None
        return (-deref(self._bids.begin()).first, deref(self._bids.begin()).second.size)

    def best_ask(self):
        if self._asks.empty():
            return None
        return (deref(self._asks.begin()).first, deref(self._asks.begin()).second.size)

    def depth(self, int side, int n=0):
        """Top ``n`` levels (all if ``n <= 0``) as ``(price, size, order_count)``, best first."""
        cdef QueueMap* levels = self.side_map(side)
        cdef QueueMap.iterator it = levels.begin()
        cdef list out = []
        cdef int64_t sign = -1 if side == 0 else 1
        while it != levels.end() and (n <= 0 or len(out) < n):
            out.append((sign * deref(it).first, deref(it).second.size, deref(it).second.count))
            inc(it)
        return out

    def snapshot(self, int n=0):
        """``(bids, asks)`` as ``(price, size, order_count)`` lists, top ``n`` (all if 0)."""
        return self.depth(0, n), self.depth(1, n)

    def snapshot_deltas(self, int n=0):
        """The book (top ``n`` levels, all if 0) as deltas: CLEAR, then one ADD per order in
        queue order, all flagged F_SNAPSHOT, the last also F_LAST; stamped with the book's seq."""
        out = [(CLEAR, BID, 0, 0, 0, F_SNAPSHOT, self.seq)]
        for side in (0, 1):
            for price, _size, _count in self.depth(side, n):
                for oid in self.order_ids(side, price):
                    out.append((ADD, side, price, self.order(oid)[2], oid, F_SNAPSHOT, self.seq))
        last = out[len(out) - 1]  # no negative index: the build disables wraparound
        out[len(out) - 1] = last[:5] + (F_SNAPSHOT | F_LAST, last[6])
        return out

    def checksum(self, int n=10):
        """CRC32 of the top ``n`` levels' prices and sizes (orderbook_core.types.checksum_text)."""
        return top_checksum([(p, s) for p, s, _c in self.depth(0, n)],
                            [(p, s) for p, s, _c in self.depth(1, n)])

    def level_count(self, int side):
        return self.side_map(side).size()

    def order_count(self):
        return self._slots.size()

    def is_crossed(self):
        if self._bids.empty() or self._asks.empty():
            return False
        return -deref(self._bids.begin()).first >= deref(self._asks.begin()).first
