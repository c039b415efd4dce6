"""What the venue keeps per trader account and per trader order, and the bounds on it.

Everything here grows with a trader's traffic, so each container has a bound that holds
by construction (docs/architecture.md, "Bounds"):

- ``AccountState.reports``: the last ``REPORTS_KEPT`` execution reports (a resend request
  for an older seq is answered ``too_old``).
- ``AccountState.open_orders``: at most the account's ``max_open_orders`` (a risk limit);
  ``AccountState.exposure`` sums them per (symbol, side), at most two entries a symbol.
- ``AccountState.orders_by_cl`` (with ``first_reports``) and the venue's ``orders``: the
  open orders and the last ``CLOSED_KEPT`` closed ones of each account (the idempotency
  window).

The window moves in ``TradingVenue.apply`` (an order's closing report), never in ``check``
or on a clock, so a replay of the journal forgets exactly the orders the live run forgot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from orderbook_core import untracked
from trading.messages import ExecReport

REPORTS_KEPT = 100_000
"""Execution reports kept per account for resend requests (older ones: ``too_old``)."""
CLOSED_KEPT = 10_000
"""The idempotency window: an account's open orders and its last ``CLOSED_KEPT`` closed ones
keep their ``cl_ord_id`` and order record. An older closed order is forgotten: a ``new`` with
its ``cl_ord_id`` is entered as a new order, and a cancel, replace or status naming it is
answered ``unknown_order`` (where a kept closed order gets ``too_late`` or its status)."""


@dataclass(slots=True)
class Order:
    """A trader's order as the venue tracks it.

    Its fields are ints, strs and bools only, so it can be in no reference cycle: it is
    taken off the garbage collector's list when made (``orderbook_core.untracked``). The
    venue keeps the open orders and the idempotency window's closed ones, ~10,000 an
    account, and each one had cost every young collection it lived through: at 60,000
    orders in-process, the 15 middle-generation collections took 1.6 ms each, 0.15 ms
    with the records untracked (README, order path)."""

    account: int
    cl_ord_id: str
    symbol: str
    order_id: int
    side: int
    order_type: int
    price: int
    qty: int
    leaves: int = 0
    cum: int = 0
    open: bool = True

    def __post_init__(self) -> None:
        untracked(self)

    def fields(self) -> tuple[int, str, str, int, int, int, int, int, int, int, bool]:
        """Every field in order (``Order(*fields)`` is the same order): what a checkpoint
        keeps. ``dataclasses.astuple`` deep-copies each value and took 90 ms of the event
        loop for a window of 10,000 orders."""
        return (
            self.account,
            self.cl_ord_id,
            self.symbol,
            self.order_id,
            self.side,
            self.order_type,
            self.price,
            self.qty,
            self.leaves,
            self.cum,
            self.open,
        )


@dataclass(slots=True)
class Exposure:
    """An account's open orders on one (symbol, side), summed: what the pre-trade checks
    read (``trading/checks.py``), kept as each order changes, so a check costs the same
    whether the account has one order open or thousands. Exact integers: summing prices x
    leaves here is the same number as summing them order by order at check time."""

    orders: int = 0
    leaves: int = 0
    worth: int = 0
    """Price x leaves of the orders that have a price (ticks x lots)."""
    unpriced: int = 0
    """Leaves of the orders that have none (stop orders, valued when read: at the
    reference price for buying power, at the new order's price for the int64 bounds)."""

    def add(self, order: Order, sign: int) -> None:
        self.orders += sign
        self.leaves += sign * order.leaves
        if order.price:
            self.worth += sign * order.price * order.leaves
        else:
            self.unpriced += sign * order.leaves


@dataclass
class AccountState:
    seq: int = 0
    reports: deque[ExecReport] = field(default_factory=lambda: deque(maxlen=REPORTS_KEPT))
    killed: bool = False
    positions: dict[str, int] = field(default_factory=dict)
    cash: int | None = None
    """Buying power left after fills, in the venue's cash units (None: no limit)."""
    open_orders: dict[tuple[str, int], Order] = field(default_factory=dict)
    """(symbol, order id) -> the open order; changed only through ``hold`` and ``release``,
    which keep ``exposure`` in step."""
    exposure: dict[tuple[str, int], Exposure] = field(default_factory=dict)
    """(symbol, side) -> the open orders there, summed."""
    orders_by_cl: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    """cl_ord_id -> (symbol, order id, fingerprint): the open orders and the ``closed`` ones.
    Tuples of plain values, which the garbage collector stops tracking (app/gc_schedule.py):
    a window of them costs no collection anything."""
    first_reports: dict[str, ExecReport] = field(default_factory=dict)
    """cl_ord_id -> the order's first report (answered again to a repeated ``new``), for the
    same orders as ``orders_by_cl``."""
    closed: deque[int] = field(default_factory=deque)
    """Ids of the account's closed orders still kept, oldest first (at most the window)."""

    def hold(self, order: Order) -> None:
        """Count an order as open, with its leaves and price as they are now (``release``
        it before either changes)."""
        key = (order.symbol, order.order_id)
        assert key not in self.open_orders, f"order {order.order_id} is already held"
        self.open_orders[key] = order
        side = (order.symbol, order.side)
        exposure = self.exposure.get(side)
        if exposure is None:
            exposure = self.exposure[side] = Exposure()
        exposure.add(order, 1)

    def release(self, order: Order) -> None:
        """No longer count an order as open (nothing happens if it was not)."""
        if self.open_orders.pop((order.symbol, order.order_id), None) is not None:
            self.exposure[order.symbol, order.side].add(order, -1)

    def side_totals(
        self, symbol: str, side: int, leaving_out: Order | None = None
    ) -> tuple[int, int, int]:
        """(leaves, worth, unpriced leaves) of the open orders on one symbol and side, less
        ``leaving_out`` (an order being replaced) if it is one of them."""
        e = self.exposure.get((symbol, side))
        if e is None:
            return 0, 0, 0
        leaves, worth, unpriced = e.leaves, e.worth, e.unpriced
        o = leaving_out
        if o is not None and o.side == side and self.open_orders.get((symbol, o.order_id)) is o:
            leaves -= o.leaves
            if o.price:
                worth -= o.price * o.leaves
            else:
                unpriced -= o.leaves
        return leaves, worth, unpriced

    def known(self, cl: str, symbol: str, order_id: int, fp: str, first: ExecReport) -> None:
        """Record an order under its ``cl_ord_id`` with its first report."""
        self.orders_by_cl[cl] = (symbol, order_id, fp)
        self.first_reports[cl] = first

    def close(self, order_id: int, orders: dict[int, Order], window: int) -> None:
        """Count a just-closed order among the kept ones, forgetting the oldest past
        ``window`` (>= 1): its record in ``orders`` and its ``cl_ord_id``."""
        self.closed.append(order_id)
        while len(self.closed) > window:
            old = orders.pop(self.closed.popleft())
            self.orders_by_cl.pop(old.cl_ord_id, None)
            self.first_reports.pop(old.cl_ord_id, None)

    def restore_closed(
        self, saved: Iterable[int] | None, orders: dict[int, Order], account: int, window: int
    ) -> None:
        """The kept closed orders from a checkpoint; one written before the window existed
        (``saved`` None) counts the account's closed orders in order-id order."""
        if saved is None:
            saved = sorted(
                o.order_id for o in orders.values() if o.account == account and not o.open
            )
        self.closed = deque()
        for order_id in saved:
            self.close(order_id, orders, window)
