"""Pure-Python reference implementation of orderbook_core._l3 (the L3 book).

Same API, results, deltas and errors as the compiled book; clarity over speed.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence

from orderbook_core.errors import (
    DuplicateOrderId,
    InvalidOrderId,
    InvalidPrice,
    InvalidSize,
    OrderNotFound,
    OrdersCrossed,
)
from orderbook_core.types import (
    F_LAST,
    F_SNAPSHOT,
    Action,
    check_int64,
    check_side,
    checksum,
    side_key,
)

Delta = tuple[int, int, int, int, int, int, int]
OP_ADD, OP_REDUCE, OP_DELETE, OP_EXECUTE, OP_REPLACE = 1, 2, 3, 4, 5


class _Order:
    __slots__ = ("order_id", "price", "side", "size")

    def __init__(self, order_id: int, side: int, price: int, size: int) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price
        self.size = size


class L3Book:
    """Individual orders in price-time queues; L2 views (size, count) per level."""

    def __init__(self, emit_deltas: bool = False, allow_cross: bool = False) -> None:
        self.emit_deltas = emit_deltas
        self.allow_cross = allow_cross
        self.seq = 0
        self._orders: dict[int, _Order] = {}
        # price -> {order_id: order} in arrival order; dicts keep insertion order
        self._queues: tuple[dict[int, dict[int, _Order]], dict[int, dict[int, _Order]]] = ({}, {})
        self._totals: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._keys: tuple[list[int], list[int]] = ([], [])
        self._deltas: list[list[int]] = []

    # --- internals ---------------------------------------------------------------------

    def _record(self, action: int, side: int, price: int, size: int, order_id: int) -> None:
        if self.emit_deltas:
            self.seq += 1
            self._deltas.append([int(action), side, price, size, order_id, 0, self.seq])

    def _mark_last(self) -> None:
        if self.emit_deltas and self._deltas:
            self._deltas[-1][5] |= F_LAST

    def _find(self, order_id: int) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise OrderNotFound(f"order id {order_id} is not in the book", order_id=order_id)
        return order

    def _check_cross(self, order_id: int, side: int, price: int) -> None:
        other = self._keys[1 - side]
        if self.allow_cross or not other:
            return
        best = abs(other[0])
        if (side == 0 and price >= best) or (side == 1 and price <= best):
            raise OrdersCrossed(
                f"order {order_id}: {'bid' if side == 0 else 'ask'} at {price} would cross "
                f"the best {'ask' if side == 0 else 'bid'} {best}",
                order_id=order_id,
                side=side,
                price=price,
                best=best,
            )

    def _add(self, order_id: int, side: int, price: int, size: int) -> None:
        check_side(side)
        if order_id == -(2**63):
            raise InvalidOrderId(f"order id {order_id} is reserved", order_id=order_id)
        if size <= 0:
            raise InvalidSize(
                f"order {order_id}: size must be positive, got {size}",
                size=size,
                side=side,
                price=price,
                order_id=order_id,
            )
        if price <= 0:
            raise InvalidPrice(
                f"order {order_id}: price must be positive, got {price}",
                price=price,
                side=side,
                order_id=order_id,
            )
        if order_id in self._orders:
            raise DuplicateOrderId(f"order id {order_id} is already in the book", order_id=order_id)
        self._check_cross(order_id, side, price)
        order = _Order(order_id, side, price, size)
        queues = self._queues[side]
        if price not in queues:
            queues[price] = {}
            self._totals[side][price] = 0
            insort(self._keys[side], side_key(side, price))
        queues[price][order_id] = order
        self._totals[side][price] += size
        self._orders[order_id] = order
        self._record(Action.ADD, side, price, size, order_id)

    def _remove(self, order: _Order) -> None:
        queue = self._queues[order.side][order.price]
        del queue[order.order_id]
        del self._orders[order.order_id]
        self._totals[order.side][order.price] -= order.size
        if not queue:
            del self._queues[order.side][order.price]
            del self._totals[order.side][order.price]
            keys = self._keys[order.side]
            keys.pop(bisect_left(keys, side_key(order.side, order.price)))

    def _take(self, order_id: int, size: int) -> None:
        order = self._find(order_id)
        if size <= 0 or size > order.size:
            raise InvalidSize(
                f"order {order_id}: cannot remove {size} of its {order.size} lots",
                size=size,
                side=order.side,
                price=order.price,
                order_id=order_id,
            )
        if size == order.size:
            self._record(Action.DELETE, order.side, order.price, 0, order_id)
            self._remove(order)
            return
        order.size -= size
        self._totals[order.side][order.price] -= size
        self._record(Action.UPDATE, order.side, order.price, order.size, order_id)

    def _delete(self, order_id: int) -> None:
        order = self._find(order_id)
        self._record(Action.DELETE, order.side, order.price, 0, order_id)
        self._remove(order)

    def _replace(self, order_id: int, new_id: int, price: int, size: int) -> None:
        order = self._find(order_id)
        side = order.side
        if size <= 0:
            raise InvalidSize(
                f"replace of {order_id}: size must be positive, got {size}",
                size=size,
                side=side,
                price=price,
                order_id=order_id,
            )
        if price <= 0:
            raise InvalidPrice(
                f"replace of {order_id}: price must be positive, got {price}",
                price=price,
                side=side,
                order_id=order_id,
            )
        if new_id != order_id and new_id in self._orders:
            raise DuplicateOrderId(
                f"replace of {order_id}: new id {new_id} is already in the book", order_id=new_id
            )
        self._check_cross(new_id, side, price)
        self._record(Action.DELETE, side, order.price, 0, order_id)
        self._remove(order)
        self._add(new_id, side, price, size)

    # --- Python API --------------------------------------------------------------------

    def add(self, order_id: int, side: int, price: int, size: int) -> None:
        check_int64(order_id, price, size)
        self._add(order_id, side, price, size)
        self._mark_last()

    def reduce(self, order_id: int, size: int) -> None:
        check_int64(order_id, size)
        self._take(order_id, size)
        self._mark_last()

    def execute(self, order_id: int, size: int) -> tuple[int, int]:
        check_int64(order_id, size)
        price = self._find(order_id).price
        self._take(order_id, size)
        self._mark_last()
        return price, size

    def delete(self, order_id: int) -> None:
        self._delete(order_id)
        self._mark_last()

    def replace(self, order_id: int, new_order_id: int, price: int, size: int) -> None:
        check_int64(order_id, new_order_id, price, size)
        self._replace(order_id, new_order_id, price, size)
        self._mark_last()

    def apply_batch(self, ops: Sequence[int]) -> int:
        if len(ops) % 5:
            raise ValueError(f"batch length {len(ops)} is not a multiple of 5")
        n = len(ops) // 5
        for i in range(n):
            op, order_id, arg, price, size = ops[5 * i : 5 * i + 5]
            try:
                if op == OP_ADD:
                    self._add(order_id, arg, price, size)
                elif op in (OP_REDUCE, OP_EXECUTE):
                    self._take(order_id, size)
                elif op == OP_DELETE:
                    self._delete(order_id)
                elif op == OP_REPLACE:
                    self._replace(order_id, arg, price, size)
                else:
                    raise ValueError(f"unknown batch op {op}")
            except Exception as exc:
                exc.index = i  # type: ignore[attr-defined]
                self._mark_last()
                raise
        self._mark_last()
        return n

    def take_deltas(self) -> list[Delta]:
        out = [tuple(d) for d in self._deltas]
        self._deltas = []
        return out  # type: ignore[return-value]

    def clear(self) -> None:
        self._orders.clear()
        for side in (0, 1):
            self._queues[side].clear()
            self._totals[side].clear()
            self._keys[side].clear()
        self._record(Action.CLEAR, 0, 0, 0, 0)
        self._mark_last()

    def order(self, order_id: int) -> tuple[int, int, int] | None:
        o = self._orders.get(order_id)
        return None if o is None else (o.side, o.price, o.size)

    def order_ids(self, side: int, price: int) -> list[int]:
        check_side(side)
        return list(self._queues[side].get(price, {}))

    def _best(self, side: int) -> tuple[int, int] | None:
        keys = self._keys[side]
        if not keys:
            return None
        price = abs(keys[0])
        return price, self._totals[side][price]

    def best_bid(self) -> tuple[int, int] | None:
        return self._best(0)

    def best_ask(self) -> tuple[int, int] | None:
        return self._best(1)

    def depth(self, side: int, n: int = 0) -> list[tuple[int, int, int]]:
        check_side(side)
        keys = self._keys[side] if n <= 0 else self._keys[side][:n]
        return [(abs(k), self._totals[side][abs(k)], len(self._queues[side][abs(k)])) for k in keys]

    def snapshot(self, n: int = 0) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        return self.depth(0, n), self.depth(1, n)

    def snapshot_deltas(self, n: int = 0) -> list[tuple[int, ...]]:
        """The book (top ``n`` levels, all if 0) as deltas: CLEAR, then one ADD per order in
        queue order, all flagged F_SNAPSHOT, the last also F_LAST; stamped with the book's seq."""
        out: list[tuple[int, ...]] = [(4, 0, 0, 0, 0, F_SNAPSHOT, self.seq)]
        for side in (0, 1):
            for price, _size, _count in self.depth(side, n):
                for o in self._queues[side][price].values():
                    out.append((1, side, price, o.size, o.order_id, F_SNAPSHOT, self.seq))
        out[-1] = (*out[-1][:5], F_SNAPSHOT | F_LAST, out[-1][6])
        return out

    def checksum(self, n: int = 10) -> int:
        return checksum(self.depth(0, n), self.depth(1, n))

    def level_count(self, side: int) -> int:
        check_side(side)
        return len(self._keys[side])

    def order_count(self) -> int:
        return len(self._orders)

    def is_crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]
