# cython: language_level=3
"""Snapshot and restore of the matching engine's whole state.

restore_into(new engine, snapshot_state(engine)) continues exactly: replaying the
remaining commands gives the same events and state as never stopping (tested).
"""

from cython.operator cimport dereference as deref, preincrement as inc
from libc.stdint cimport int64_t

from orderbook_core._engine cimport EOrder, ELevels, MatchingEngine, order_state
from orderbook_core.errors import InvalidSize

include "_consts.pxi"


cdef inline int64_t _abs(int64_t v) noexcept nogil:
    return -v if v < 0 else v


cdef EOrder _from_state(fields):
    cdef EOrder o
    (o.order_id, o.account, o.side, o.type, o.price, o.stop_price, o.leaves, o.cum,
     o.display, o.visible, o.tif, o.post_only, o.stp, o.arrival) = fields
    o.prev_id = NO_ORDER
    o.next_id = NO_ORDER
    return o


def snapshot_state(MatchingEngine self):
    """Everything needed to continue exactly where this engine is."""
    cdef list book = []
    cdef ELevels* levels
    cdef ELevels.iterator it
    cdef int64_t oid
    cdef size_t i
    for side in (0, 1):
        levels = self._levels(side)
        it = levels.begin()
        while it != levels.end():
            orders = []
            oid = deref(it).second.head_id
            while oid != NO_ORDER:
                orders.append(list(order_state(self._orders.find(oid))))
                oid = self._orders.find(oid).next_id
            book.append([side, _abs(deref(it).first), orders])
            inc(it)
    stops = []
    for i in range(self._stops.capacity()):
        if self._stops.key_at(i) != NO_ORDER:
            stops.append(list(order_state(self._stops.value_at(i))))
    stops.sort(key=lambda s: s[13])
    return {"seq": self.seq, "arrival": self._arrival, "last_price": self.last_price,
            "book": book, "stops": stops}


def restore_into(MatchingEngine engine, state):
    """Load a ``snapshot_state()`` into a new engine and return it; a state whose level
    sizes do not fit int64 (or whose fields do not) is refused with InvalidSize
    (OverflowError), never loaded wrapped."""
    cdef EOrder o
    cdef int64_t arrival
    for _side, _price, orders in state["book"]:
        for fields in orders:
            o = _from_state(fields)
            if o.visible < 0 or engine._overflows(o.side, o.price, o.visible, 0):
                raise InvalidSize(f"engine state: order {o.order_id} takes the level at "
                                  f"{o.price} past int64", size=o.visible, side=o.side,
                                  price=o.price, order_id=o.order_id)
            arrival = o.arrival
            engine._rest(&o)
            engine._orders.find(o.order_id).arrival = arrival
    for fields in state["stops"]:
        o = _from_state(fields)
        engine._stops.put(o.order_id, o)
    engine.seq = state["seq"]
    engine._arrival = state["arrival"]
    engine.last_price = state["last_price"]
    engine._touched.clear()
    return engine
