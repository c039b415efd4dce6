"""Pure-Python reference of the matching engine (orderbook_core._engine).

This file is the executable specification: the compiled engine must give
the same events, byte for byte, for the same commands. See engine_types for
the event layout and vocabulary.
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from collections.abc import MutableSequence, Sequence
from typing import Any, TypeVar

from orderbook_core.engine_types import (
    ORDER_FIELDS,
    BookEvent,
    EngineEvent,
    ExecEvent,
    OrderState,
    TradeEvent,
)
from orderbook_core.engine_types import ExecType as X
from orderbook_core.engine_types import OrderType as T
from orderbook_core.engine_types import Reason as R
from orderbook_core.engine_types import SelfTrade as S
from orderbook_core.engine_types import TimeInForce as F
from orderbook_core.errors import InvalidSize
from orderbook_core.types import INT64_MAX, side_key

SIZE_MAX = INT64_MAX
"""The largest size an int64 holds: no level, order or total may pass it."""
_C_INT = 2**31
SLICES_MAX = 1000
"""Most slices an iceberg may show: one taker meets at most that many trades per iceberg."""

_T = TypeVar("_T")


def untracked(obj: _T) -> _T:
    """``obj`` as it is: the compiled engine takes it off the garbage collector's list,
    which changes how long collections take, never a result."""
    return obj


def _fits(*values: int, wide: bool = True) -> None:
    """Refuse arguments the compiled engine's C types cannot hold, as its conversion does
    (OverflowError, before anything changes): int64 when ``wide``, C int otherwise."""
    low, high = (-SIZE_MAX - 1, SIZE_MAX) if wide else (-_C_INT, _C_INT - 1)
    for v in values:
        if not low <= v <= high:
            raise OverflowError(f"{v} does not fit the engine's {'int64' if wide else 'int'}")


class _Order:
    __slots__ = ORDER_FIELDS
    order_id: int
    account: int
    side: int
    type: int
    price: int
    stop_price: int
    leaves: int
    cum: int
    display: int
    visible: int
    tif: int
    post_only: int
    stp: int
    arrival: int

    def __init__(self, *values: int) -> None:
        for name, value in zip(ORDER_FIELDS, values, strict=True):
            setattr(self, name, int(value))  # plain ints, as the compiled engine's records

    def state(self) -> list[int]:
        return [getattr(self, name) for name in ORDER_FIELDS]


class MatchingEngine:
    """Price-time priority for one symbol, with one sequenced event log."""

    def __init__(self, expected_orders: int = 0) -> None:
        """``expected_orders`` pre-sizes the compiled engine's maps; dicts need no hint."""
        self.seq = 0
        self.last_price = 0
        self._arrival = 0
        self._orders: dict[int, _Order] = {}  # resting orders
        self._stops: dict[int, _Order] = {}  # pending stop orders
        self._queues: tuple[dict[int, dict[int, _Order]], dict[int, dict[int, _Order]]] = ({}, {})
        self._visible: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._keys: tuple[list[int], list[int]] = ([], [])
        self._events: list[EngineEvent] = []
        self._touched: list[tuple[int, int]] = []
        self._kept: list[EngineEvent] = []

    # --- event log ---------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _exec(self, *fields: int) -> None:
        """Append an execution report: ``fields`` are ExecEvent's after ``kind, seq``."""
        self._events.append(ExecEvent(1, self._next_seq(), *(int(f) for f in fields)))

    def _report(
        self, o: _Order, exec_type: int, last_qty: int = 0, last_px: int = 0, reason: int = 0
    ) -> None:
        self._exec(
            o.order_id,
            o.account,
            exec_type,
            o.side,
            o.price,
            last_qty,
            last_px,
            o.leaves,
            o.cum,
            reason,
        )

    def _reject(self, order_id: int, account: int, side: int, price: int, reason: int) -> None:
        self._exec(order_id, account, X.REJECTED, side, price, 0, 0, 0, 0, reason)

    def _finish(self) -> list[EngineEvent]:
        for side, price in self._touched:
            size = self._visible[side].get(price, 0)
            self._events.append(BookEvent(3, self._next_seq(), side, price, size))
        self._touched = []
        events, self._events = self._events, []
        return events

    def _touch(self, side: int, price: int) -> None:
        if (side, price) not in self._touched:
            self._touched.append((side, price))

    # --- book --------------------------------------------------------------------------

    def _rest(self, o: _Order) -> None:
        self._arrival += 1
        o.arrival = self._arrival
        queues = self._queues[o.side]
        if o.price not in queues:
            queues[o.price] = {}
            self._visible[o.side][o.price] = 0
            insort(self._keys[o.side], side_key(o.side, o.price))
        queues[o.price][o.order_id] = o
        self._visible[o.side][o.price] += o.visible
        self._orders[o.order_id] = o
        self._touch(o.side, o.price)

    def _unrest(self, o: _Order) -> None:
        queue = self._queues[o.side][o.price]
        del queue[o.order_id]
        del self._orders[o.order_id]
        self._visible[o.side][o.price] -= o.visible
        self._touch(o.side, o.price)
        if not queue:
            del self._queues[o.side][o.price]
            del self._visible[o.side][o.price]
            keys = self._keys[o.side]
            keys.pop(bisect_left(keys, side_key(o.side, o.price)))

    def _best(self, side: int) -> int:
        keys = self._keys[side]
        return abs(keys[0]) if keys else 0

    def _overflows(self, side: int, price: int, shown: int, already: int) -> bool:
        """Whether ``shown`` more on the level (of which ``already`` is leaving) passes int64."""
        return shown > SIZE_MAX - (self._visible[side].get(price, 0) - already)

    def _crosses(self, side: int, price: int) -> bool:
        best = self._best(1 - side)
        return best != 0 and (price >= best if side == 0 else price <= best)

    def _cancel(self, o: _Order, reason: int) -> None:
        if o.order_id in self._orders:
            self._unrest(o)
        else:
            del self._stops[o.order_id]
        o.leaves = 0
        self._report(o, X.CANCELLED, reason=reason)

    # --- matching ----------------------------------------------------------------------

    def _fillable(self, o: _Order) -> bool:
        need = o.leaves
        for key in self._keys[1 - o.side]:
            price = abs(key)
            if o.type == T.LIMIT and not (price <= o.price if o.side == 0 else price >= o.price):
                break
            for maker in self._queues[1 - o.side][price].values():
                if o.stp == S.ALLOW or maker.account != o.account:
                    need -= maker.leaves
                    if need <= 0:
                        return True
        return False

    def _self_trade(self, o: _Order, maker: _Order) -> bool:
        """Apply the taker's self-trade rule; return False when the taker is done."""
        mode = o.stp
        if mode == S.CANCEL_NEWEST:
            o.leaves = 0
            self._report(o, X.CANCELLED, reason=R.SELF_TRADE)
            return False
        if mode in (S.CANCEL_OLDEST, S.CANCEL_BOTH):
            self._cancel(maker, R.SELF_TRADE)
            if mode == S.CANCEL_BOTH:
                o.leaves = 0
                self._report(o, X.CANCELLED, reason=R.SELF_TRADE)
                return False
            return True
        qty = min(o.leaves, maker.leaves)  # DECREMENT: both shrink, nothing trades
        if qty == maker.leaves:
            self._cancel(maker, R.SELF_TRADE)
        else:
            maker.leaves -= qty
            if maker.visible > maker.leaves:
                self._visible[maker.side][maker.price] -= maker.visible - maker.leaves
                maker.visible = maker.leaves
                self._touch(maker.side, maker.price)
            self._report(maker, X.REPLACED, reason=R.SELF_TRADE)
        o.leaves -= qty
        if o.leaves == 0:
            self._report(o, X.CANCELLED, reason=R.SELF_TRADE)
            return False
        self._report(o, X.REPLACED, reason=R.SELF_TRADE)
        return True

    def _match(self, o: _Order) -> None:
        other = 1 - o.side
        while o.leaves > 0 and self._keys[other]:
            price = abs(self._keys[other][0])
            if o.type == T.LIMIT and not (price <= o.price if o.side == 0 else price >= o.price):
                break
            maker = next(iter(self._queues[other][price].values()))
            if o.stp != S.ALLOW and maker.account == o.account:
                if not self._self_trade(o, maker):
                    return
                continue
            qty = min(o.leaves, maker.visible)
            maker.visible -= qty
            maker.leaves -= qty
            maker.cum += qty
            o.leaves -= qty
            o.cum += qty
            self._visible[other][price] -= qty
            self.last_price = price
            self._touch(other, price)
            trade = TradeEvent(
                2,
                self._next_seq(),
                price,
                qty,
                o.side,
                maker.order_id,
                o.order_id,
                maker.account,
                o.account,
            )
            self._events.append(trade)
            self._report(maker, X.FILL if maker.leaves == 0 else X.PARTIAL_FILL, qty, price)
            self._report(o, X.FILL if o.leaves == 0 else X.PARTIAL_FILL, qty, price)
            if maker.leaves == 0:
                self._unrest(maker)
            elif maker.visible == 0:  # iceberg: show the next slice at the back of the queue
                self._unrest(maker)
                maker.visible = min(maker.display, maker.leaves)
                self._rest(maker)

    def _process(self, o: _Order) -> None:
        """Match an active (limit or market) order, then rest or cancel what is left."""
        if o.tif == F.FOK and not self._fillable(o):
            o.leaves = 0
            self._report(o, X.CANCELLED, reason=R.FOK_NOT_FILLABLE)
            return
        self._match(o)
        if o.leaves == 0:
            return
        if o.type == T.MARKET or o.tif != F.GTC:
            reason = R.NO_LIQUIDITY if o.type == T.MARKET and o.cum == 0 else R.IOC_REMAINDER
            o.leaves = 0
            self._report(o, X.CANCELLED, reason=reason)
            return
        o.visible = min(o.display, o.leaves) if o.display else o.leaves
        if self._overflows(o.side, o.price, o.visible, 0):  # a triggered stop-limit, say
            o.leaves = 0
            o.visible = 0
            self._report(o, X.CANCELLED, reason=R.SIZE_OVERFLOW)
            return
        self._rest(o)

    def _triggered(self, o: _Order) -> bool:
        if self.last_price == 0:
            return False
        return self.last_price >= o.stop_price if o.side == 0 else self.last_price <= o.stop_price

    def _run_triggers(self) -> None:
        while True:
            ready = [o for o in self._stops.values() if self._triggered(o)]
            if not ready:
                return
            o = min(ready, key=lambda s: s.arrival)
            del self._stops[o.order_id]
            o.type = T.MARKET if o.type == T.STOP else T.LIMIT
            self._report(o, X.TRIGGERED)
            self._process(o)

    # --- commands ----------------------------------------------------------------------

    def _check(
        self,
        order_id: int,
        side: int,
        order_type: int,
        price: int,
        size: int,
        tif: int,
        post_only: bool,
        display: int,
        stop_price: int,
        stp: int,
    ) -> int:
        if order_id == -(2**63):
            return R.INVALID_ORDER_ID
        if side not in (0, 1):
            return R.INVALID_SIDE
        if not (0 <= order_type <= 3 and 0 <= tif <= 2 and 0 <= stp <= 4):
            return R.INVALID_TYPE
        if order_id in self._orders or order_id in self._stops:
            return R.DUPLICATE_ORDER_ID
        if size <= 0:
            return R.INVALID_SIZE
        if order_type in (T.LIMIT, T.STOP_LIMIT) and price <= 0:
            return R.INVALID_PRICE
        if order_type in (T.STOP, T.STOP_LIMIT) and stop_price <= 0:
            return R.INVALID_STOP_PRICE
        if display < 0 or display > size or (display and order_type in (T.MARKET, T.STOP)):
            return R.INVALID_DISPLAY
        if display and (size - 1) // display >= SLICES_MAX:
            return R.INVALID_DISPLAY
        if order_type == T.LIMIT and self._overflows(side, price, display or size, 0):
            return R.SIZE_OVERFLOW
        if post_only and (order_type != T.LIMIT or tif != F.GTC):
            return R.INVALID_TYPE
        if post_only and self._crosses(side, price):
            return R.POST_ONLY_WOULD_TAKE
        return R.NONE

    def new_order(
        self,
        order_id: int,
        account: int,
        side: int,
        order_type: int,
        price: int,
        size: int,
        tif: int = 0,
        post_only: bool = False,
        display: int = 0,
        stop_price: int = 0,
        stp: int = 0,
    ) -> list[EngineEvent]:
        """Accept, match, rest or reject one new order; return the events it caused."""
        _fits(order_id, account, price, size, display, stop_price)
        _fits(side, order_type, tif, stp, wide=False)
        reason = self._check(
            order_id, side, order_type, price, size, tif, post_only, display, stop_price, stp
        )
        if order_type in (T.MARKET, T.STOP):
            price = 0
        if reason != R.NONE:
            self._reject(order_id, account, side, price, reason)
            return self._finish()
        o = _Order(
            order_id,
            account,
            side,
            order_type,
            price,
            stop_price,
            size,
            0,
            display,
            0,
            tif,
            int(post_only),
            stp,
            0,
        )
        self._report(o, X.ACCEPTED)
        if order_type in (T.STOP, T.STOP_LIMIT):
            self._arrival += 1
            o.arrival = self._arrival
            self._stops[order_id] = o
        else:
            self._process(o)
        self._run_triggers()
        return self._finish()

    def _owned(self, order_id: int, account: int) -> _Order | None:
        o = self._orders.get(order_id) or self._stops.get(order_id)
        if o is None:
            self._reject(order_id, account, 0, 0, R.UNKNOWN_ORDER)
        elif o.account != account:
            self._reject(order_id, account, o.side, o.price, R.NOT_OWNER)
            return None
        return o

    def cancel(self, order_id: int, account: int) -> list[EngineEvent]:
        _fits(order_id, account)
        o = self._owned(order_id, account)
        if o is not None:
            self._cancel(o, R.USER_CANCEL)
        return self._finish()

    def replace(self, order_id: int, account: int, price: int, size: int) -> list[EngineEvent]:
        """New price and open size; size down at the same price keeps queue priority."""
        _fits(order_id, account, price, size)
        o = self._owned(order_id, account)
        if o is None:
            return self._finish()
        reason = R.NONE
        if order_id in self._stops:
            reason = R.NOT_REPLACEABLE
        elif size <= 0:
            reason = R.INVALID_SIZE
        elif price <= 0:
            reason = R.INVALID_PRICE
        elif o.display and (size - 1) // o.display >= SLICES_MAX:
            reason = R.INVALID_DISPLAY
        elif size > SIZE_MAX - o.cum or self._overflows(
            o.side,
            price,
            o.display if 0 < o.display < size else size,
            o.visible if price == o.price else 0,
        ):
            reason = R.SIZE_OVERFLOW
        elif o.post_only and price != o.price and self._crosses(o.side, price):
            reason = R.POST_ONLY_WOULD_TAKE
        if reason != R.NONE:
            self._reject(order_id, account, o.side, o.price, reason)
            return self._finish()
        if price == o.price and size <= o.leaves:
            shown = min(o.visible, size)
            self._visible[o.side][o.price] -= o.visible - shown
            o.visible = shown
            o.leaves = size
            self._touch(o.side, o.price)
            self._report(o, X.REPLACED)
        else:
            self._unrest(o)
            o.price = price
            o.leaves = size
            self._report(o, X.REPLACED)
            self._process(o)
        self._run_triggers()
        return self._finish()

    def mass_cancel(self, account: int) -> list[EngineEvent]:
        """Cancel every resting and pending stop order of an account, by order id."""
        _fits(account)
        mine = [o for o in (*self._orders.values(), *self._stops.values()) if o.account == account]
        for o in sorted(mine, key=lambda x: x.order_id):
            self._cancel(o, R.MASS_CANCEL)
        return self._finish()

    def run_batch(
        self,
        commands: Sequence[int],
        latencies: MutableSequence[int] | None = None,
        interval_ns: int = 0,
        keep: bool = False,
    ) -> int:
        """Same contract as the compiled engine's run_batch (12-int64 records)."""
        if len(commands) % 12:
            raise ValueError(f"batch length {len(commands)} is not a multiple of 12")
        n = len(commands) // 12
        if latencies is not None and len(latencies) < n:
            raise ValueError(f"latencies needs {n} slots, has {len(latencies)}")
        kept: list[EngineEvent] = []
        produced = 0
        start = time.monotonic_ns()
        for i in range(n):
            c = commands[12 * i : 12 * i + 12]
            due = start + i * interval_ns if interval_ns else time.monotonic_ns()
            while interval_ns and time.monotonic_ns() < due:
                pass
            if c[0] == 1:
                events = self.new_order(
                    c[1], c[2], c[3], c[4], c[5], c[6], c[7], bool(c[8]), c[9], c[10], c[11]
                )
            elif c[0] == 2:
                events = self.cancel(c[1], c[2])
            else:
                events = []
            if latencies is not None:
                latencies[i] = time.monotonic_ns() - due
            produced += len(events)
            if keep:
                kept.extend(events)
        self._kept = kept
        return produced

    def take_events(self) -> list[EngineEvent]:
        kept, self._kept = self._kept, []
        return kept

    # --- views and state ---------------------------------------------------------------

    def best_bid(self) -> tuple[int, int] | None:
        p = self._best(0)
        return (p, self._visible[0][p]) if p else None

    def best_ask(self) -> tuple[int, int] | None:
        p = self._best(1)
        return (p, self._visible[1][p]) if p else None

    def depth(self, side: int, n: int = 0) -> list[tuple[int, int, int]]:
        keys = self._keys[side] if n <= 0 else self._keys[side][:n]
        return [
            (abs(k), self._visible[side][abs(k)], len(self._queues[side][abs(k)])) for k in keys
        ]

    def order(self, order_id: int) -> OrderState | None:
        o = self._orders.get(order_id) or self._stops.get(order_id)
        return None if o is None else OrderState(*o.state())

    def resting(self, order_id: int) -> tuple[int, int, int, int] | None:
        """(side, price, displayed size, arrival) of a resting order; None for a pending
        stop or an unknown id. Queue order within a level is arrival order."""
        o = self._orders.get(order_id)
        return None if o is None else (o.side, o.price, o.visible, o.arrival)

    def level_size(self, side: int, price: int) -> int:
        """The displayed size of the level at ``price`` (0 when there is none)."""
        _fits(price)
        _fits(side, wide=False)
        return self._visible[0 if side == 0 else 1].get(price, 0)  # as the compiled one

    def order_ids(self, side: int, price: int) -> list[int]:
        return list(self._queues[side].get(price, {}))

    def order_count(self) -> int:
        return len(self._orders) + len(self._stops)

    def snapshot_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is."""
        book = [
            [side, abs(k), [o.state() for o in self._queues[side][abs(k)].values()]]
            for side in (0, 1)
            for k in self._keys[side]
        ]
        stops = [o.state() for o in sorted(self._stops.values(), key=lambda s: s.arrival)]
        return {
            "seq": self.seq,
            "arrival": self._arrival,
            "last_price": self.last_price,
            "book": book,
            "stops": stops,
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> MatchingEngine:
        engine = cls()
        for _side, _price, orders in state["book"]:
            for fields in orders:
                _fits(*fields)
                o = _Order(*fields)
                if o.visible < 0 or engine._overflows(o.side, o.price, o.visible, 0):
                    raise InvalidSize(
                        f"engine state: order {o.order_id} takes the level at {o.price} past int64",
                        size=o.visible,
                        side=o.side,
                        price=o.price,
                        order_id=o.order_id,
                    )
                arrival = o.arrival
                engine._rest(o)
                o.arrival = arrival
        for fields in state["stops"]:
            _fits(*fields)
            o = _Order(*fields)
            engine._stops[o.order_id] = o
        engine.seq = state["seq"]
        engine._arrival = state["arrival"]
        engine.last_price = state["last_price"]
        engine._touched = []
        return engine
