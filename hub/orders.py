"""Order-level (L3) books as the hub publishes them: changes, snapshots and queue diffs.

Sources with orders attach the order changes of each atomic event to its book
update (``BookUpdate.orders``) and the resting orders to their snapshots
(``BookSnapshot.orders``), so the L3 book shares the L2 book's seq and sums to
it at every seq. Consumers keep an ``L3Book`` of the core (``order_book``)
and apply the changes with ``apply_orders``.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.events import OrderChange, RestingOrder
from orderbook_core import BookError, L3Book
from orderbook_core.types import Action

ADD, UPDATE, DELETE, CLEAR = (
    int(Action.ADD),
    int(Action.UPDATE),
    int(Action.DELETE),
    int(Action.CLEAR),
)


def order_book(orders: Iterable[RestingOrder] = ()) -> L3Book:
    """A consumer's order book (crossing allowed: it mirrors, it does not validate)."""
    book = L3Book(allow_cross=True)
    for side, price, size, oid in orders:
        book.add(oid, side, price, size)
    return book


def apply_orders(book: L3Book, changes: Iterable[OrderChange]) -> None:
    """Apply published order changes; raise the core's BookError (or ValueError) on a change
    that does not fit the book (an unknown order, a size that grows in place)."""
    for action, side, price, size, oid in changes:
        if action == ADD:
            book.add(oid, side, price, size)
        elif action == UPDATE:
            order = book.order(oid)
            if order is None or size >= order[2]:
                raise ValueError(f"order {oid}: update to {size} lots does not shrink it")
            book.reduce(oid, order[2] - size)
        elif action == DELETE:
            book.delete(oid)
        elif action == CLEAR:
            book.clear()
        else:
            raise ValueError(f"unknown order action {action}")


def follow(book: L3Book | None, changes: Iterable[OrderChange] | None) -> tuple[L3Book | None, str]:
    """A consumer's order book after one update: ``(book, "")``, or ``(None, why)`` when it
    can no longer follow the stream (the update has no orders, or a change does not fit)
    and must wait for a snapshot with orders. A consumer without a book stays without."""
    if book is None:
        return None, ""
    if changes is None:
        return None, "the source stopped publishing orders"
    try:
        apply_orders(book, changes)
    except (ValueError, BookError) as exc:
        return None, str(exc)
    return book, ""


def resting_orders(book: L3Book) -> tuple[RestingOrder, ...]:
    """Every resting order in priority order: bids best first, then asks best first."""
    return tuple((d[1], d[2], d[3], d[4]) for d in book.snapshot_deltas() if d[0] == ADD)
