"""Vocabulary of the matching engine, shared by the compiled engine and its twin.

Commands go in; one sequenced event log per symbol comes out. Each command
returns the events it caused, as named records of integers (NamedTuples, so
``e.kind``, ``e.price`` and ``e[0]`` all work), one class per kind:

    ExecEvent   (kind=1, seq, order_id, account, exec_type, side, price, last_qty,
                 last_price, leaves_qty, cum_qty, reason)
    TradeEvent  (kind=2, seq, price, qty, aggressor_side, maker_order_id, taker_order_id,
                 maker_account, taker_account)
    BookEvent   (kind=3, seq, side, price, size)   size: the level's displayed size

``isinstance(e, TradeEvent)`` narrows an ``EngineEvent`` for mypy. Both engines
return these same classes, field values plain ``int``; ``MatchingEngine.order()``
returns an ``OrderState``. orjson does not serialise NamedTuples: pass ``list(e)``.

Execution reports and trades appear in execution order; the book deltas of
a command follow them, one per level it touched (in first-touched order),
with the level's final displayed size (0 = level gone). ``seq`` is gapless
per engine. The same commands always give the same events.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

ORDER_FIELDS = (
    "order_id",
    "account",
    "side",
    "type",
    "price",
    "stop_price",
    "leaves",
    "cum",
    "display",
    "visible",
    "tif",
    "post_only",
    "stp",
    "arrival",
)
"""What ``MatchingEngine.order(order_id)`` returns, in this order."""
VISIBLE = ORDER_FIELDS.index("visible")
"""Index of a resting order's displayed size (what the public book shows of it)."""


class Event(IntEnum):
    EXEC = 1
    TRADE = 2
    BOOK = 3


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1
    STOP = 2
    """Stop-market: becomes a market order when a trade reaches the stop price."""
    STOP_LIMIT = 3
    """Becomes a limit order at ``price`` when a trade reaches the stop price."""


class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2


class SelfTrade(IntEnum):
    """What happens when an order would trade with a resting order of its own account."""

    ALLOW = 0
    CANCEL_NEWEST = 1
    CANCEL_OLDEST = 2
    CANCEL_BOTH = 3
    DECREMENT = 4


class ExecType(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    PARTIAL_FILL = 3
    FILL = 4
    CANCELLED = 5
    REPLACED = 6
    TRIGGERED = 7


class Reason(IntEnum):
    """Why an order was rejected or cancelled (0 for every other report)."""

    NONE = 0
    UNKNOWN_ORDER = 1
    DUPLICATE_ORDER_ID = 2
    INVALID_SIZE = 3
    INVALID_PRICE = 4
    INVALID_TYPE = 5
    POST_ONLY_WOULD_TAKE = 6
    FOK_NOT_FILLABLE = 7
    NO_LIQUIDITY = 8
    NOT_OWNER = 9
    INVALID_DISPLAY = 10
    INVALID_STOP_PRICE = 11
    SELF_TRADE = 12
    IOC_REMAINDER = 13
    USER_CANCEL = 14
    MASS_CANCEL = 15
    NOT_REPLACEABLE = 16
    INVALID_SIDE = 17
    INVALID_ORDER_ID = 18
    """The reserved order id -2**63."""
    SIZE_OVERFLOW = 19
    """The order would take its price level's displayed size, or its own filled plus open
    size, past what an int64 holds (the venue's checks refuse such orders first; this is
    the engine's last line)."""


class ExecEvent(NamedTuple):
    """An execution report: what happened to one order (``kind`` is ``Event.EXEC``)."""

    kind: int
    seq: int
    order_id: int
    account: int
    exec_type: int
    side: int
    price: int
    last_qty: int
    last_price: int
    leaves_qty: int
    cum_qty: int
    reason: int


class TradeEvent(NamedTuple):
    """One match between a resting (maker) and an incoming (taker) order (``Event.TRADE``)."""

    kind: int
    seq: int
    price: int
    qty: int
    aggressor_side: int
    maker_order_id: int
    taker_order_id: int
    maker_account: int
    taker_account: int


class BookEvent(NamedTuple):
    """A price level's new displayed size after a command (0 = level gone; ``Event.BOOK``)."""

    kind: int
    seq: int
    side: int
    price: int
    size: int


EngineEvent = ExecEvent | TradeEvent | BookEvent


class OrderState(NamedTuple):
    """A resting order as ``MatchingEngine.order(order_id)`` returns it (``ORDER_FIELDS``)."""

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
