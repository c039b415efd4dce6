"""What the venue keeps per trader account and per trader order, and the bounds on it.

Everything here grows with a trader's traffic, so each container has a bound that holds
by construction (docs/architecture.md, "Bounds"):

- ``AccountState.reports``: the last ``REPORTS_KEPT`` execution reports (a resend request
  for an older seq is answered ``too_old``).
- ``AccountState.open_orders``: at most the account's ``max_open_orders`` (a risk limit).
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

from trading.messages import ExecReport

REPORTS_KEPT = 100_000
"""Execution reports kept per account for resend requests (older ones: ``too_old``)."""
CLOSED_KEPT = 10_000
"""The idempotency window: an account's open orders and its last ``CLOSED_KEPT`` closed ones
keep their ``cl_ord_id`` and order record. An older closed order is forgotten: a ``new`` with
its ``cl_ord_id`` is entered as a new order, and a cancel, replace or status naming it is
answered ``unknown_order`` (where a kept closed order gets ``too_late`` or its status)."""


@dataclass
class Order:
    """A trader's order as the venue tracks it."""

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


@dataclass
class AccountState:
    seq: int = 0
    reports: deque[ExecReport] = field(default_factory=lambda: deque(maxlen=REPORTS_KEPT))
    killed: bool = False
    positions: dict[str, int] = field(default_factory=dict)
    cash: int | None = None
    """Buying power left after fills, in the venue's cash units (None: no limit)."""
    open_orders: dict[tuple[str, int], Order] = field(default_factory=dict)
    orders_by_cl: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    """cl_ord_id -> (symbol, order id, fingerprint): the open orders and the ``closed`` ones.
    Tuples of plain values, which the garbage collector stops tracking (app/gc_schedule.py):
    a window of them costs no collection anything."""
    first_reports: dict[str, ExecReport] = field(default_factory=dict)
    """cl_ord_id -> the order's first report (answered again to a repeated ``new``), for the
    same orders as ``orders_by_cl``."""
    closed: deque[int] = field(default_factory=deque)
    """Ids of the account's closed orders still kept, oldest first (at most the window)."""

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
