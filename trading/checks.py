"""The venue's pre-trade checks, read-only: the account's limits, and what the engine's
int64 can hold.

Two kinds of rule, kept apart because only one of them may run again on replay:

- **Account limits** (``limits_problem``): the configured ``max_qty``, notional, collar,
  open orders, position and buying power. They can change between runs (an edited
  accounts file), so a journaled command is never re-judged by them: it was accepted,
  acknowledged and traded under the limits of its time.
- **Int64 bounds** (``field_problem``, ``bounds_problem``): every quantity, price, stop
  price and display size fits int64; after the order, its price level's size, the
  account's open quantity on that side, its position plus open quantity, the order's
  notional and the notional of the account's open orders on that side (ticks x lots)
  still fit too. These never change and hold even when
  a limit is "off", so the engine never meets a number it cannot store. On replay they
  run again (``replay_problem``, with the command's shape), which is how a journal
  written before they existed starts cleanly.

A problem is ``(reason, text)``; the venue turns it into a ``Reject``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from orderbook_core.engine_types import OrderType
from trading.messages import (
    SYMBOL_STATES,
    Cancel,
    Command,
    Kill,
    MassCancel,
    New,
    Replace,
    SetState,
    Sim,
)

if TYPE_CHECKING:
    from trading.venue import Order, TradingVenue

INT64_MAX = 2**63 - 1
"""The largest number the engine stores: no size, price, level or total may pass it."""
INT64_MIN = -(2**63)
SIM_STEPS_MAX = 100_000
"""Most simulated orders one ``sim`` command may ask for (the order path asks for 2,000)."""
RESTING = (int(OrderType.LIMIT), int(OrderType.STOP_LIMIT))
"""Order types that rest at their price (and so add to that level)."""

Problem = tuple[str, str]


class Terms(Protocol):
    """What the checks read of an order: a ``New``, or a replaced order as it would be."""

    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def price(self) -> int: ...
    @property
    def qty(self) -> int: ...
    @property
    def stop(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Replaced:
    """An open order with a replace's new price and quantity (a replace keeps no stop)."""

    symbol: str
    side: int
    type: int
    price: int
    qty: int
    stop: int = 0


def field_problem(name: str, value: int, unit: Any) -> str | None:
    """Why one integer field of an order cannot be stored by the engine, or None."""
    if value < 0:
        return f"{name} must not be negative"
    if value > INT64_MAX:
        return f"{name} is more than the venue can hold (at most {unit.to_str(INT64_MAX)})"
    return None


def limits_problem(
    v: TradingVenue, account: int, terms: Terms, replacing: Order | None = None
) -> Problem | None:
    """The first account limit the order would break, or None. For a replace, ``terms`` are
    the order as it would be and ``replacing`` the open order it replaces (left out of the
    account's open orders and their counts)."""
    symbol, side, qty = terms.symbol, terms.side, terms.qty
    x = v.exchanges[symbol]
    limits = v.risk.limits(v.accounts[account], x.instrument)
    if limits.max_qty and qty > limits.max_qty:
        return "max_qty", f"qty exceeds the account's maximum of {limits.max_qty_text}"
    ref = v.reference_price(symbol)
    price = terms.price or terms.stop or ref
    if limits.max_notional and price and price * qty > limits.max_notional:
        return "max_notional", f"notional exceeds the account's maximum of {limits.notional_text}"
    if terms.price and ref and abs(terms.price - ref) * 10_000 > limits.collar_bps * ref:
        return (
            "price_collar",
            f"price is more than {limits.collar_bps / 100:g}% from the reference price "
            f"{x.instrument.tick.to_str(ref)}",
        )
    acct = v.state[account]
    if replacing is None and len(acct.open_orders) >= limits.max_open_orders:
        return "max_open_orders", f"{limits.max_open_orders} orders are already open"
    if limits.max_position:
        pos = acct.positions.get(symbol, 0)
        same_side = acct.side_totals(symbol, side, replacing)[0]
        exposure = pos + same_side + qty if side == 0 else -pos + same_side + qty
        if exposure > limits.max_position:
            text = f"position plus open orders would exceed {limits.position_text}"
            return "position_limit", text
    if side == 0 and acct.cash is not None:
        # In the venue's cash units (integers): ticks x lots x the symbol's cash scale.
        scale = v.cash_unit.scale
        committed = 0
        for s, side_ in acct.exposure:
            if side_ == 0:
                _leaves, worth, unpriced = acct.side_totals(s, 0, replacing)
                if unpriced:
                    worth += v.reference_price(s) * unpriced
                committed += worth * scale[s]
        needed = committed + price * qty * scale[symbol]
        if needed > acct.cash:
            return (
                "buying_power",
                f"buys would need {v.cash_unit.text(needed)}, the account has "
                f"{v.cash_unit.text(acct.cash)}",
            )
    return None


def bounds_problem(
    v: TradingVenue, account: int, terms: Terms, replacing: Order | None = None
) -> Problem | None:
    """The first int64 bound the order would break (reason ``size_limit``), or None; the
    order's own fields are already known to fit (``field_problem``)."""
    symbol, side, qty, px = terms.symbol, terms.side, terms.qty, terms.price
    tick, lot = v.units[symbol]
    most = lot.to_str(INT64_MAX)
    engine = v.exchanges[symbol].engine
    if replacing is not None and replacing.cum + qty > INT64_MAX:
        return "size_limit", f"filled plus open qty of the order would pass {most}"
    if px and terms.type in RESTING:
        level = engine.level_size(side, px)
        if replacing is not None and replacing.price == px:
            shown = engine.resting(replacing.order_id)
            level -= shown[2] if shown is not None else 0
        if level + qty > INT64_MAX:
            return (
                "size_limit",
                f"the {tick.to_str(px)} level would hold more than {most} (what the venue "
                "can hold)",
            )
    price = px or terms.stop or v.reference_price(symbol)
    if price * qty > INT64_MAX:
        return "size_limit", "notional is more than the venue can hold (int64 ticks x lots)"
    acct = v.state[account]
    same, worth, unpriced = acct.side_totals(symbol, side, replacing)
    worth += price * unpriced
    if same + qty > INT64_MAX:
        return "size_limit", f"open orders on that side would pass {most}"
    if worth + price * qty > INT64_MAX:
        return "size_limit", "open orders' notional on that side would pass int64 ticks x lots"
    pos = acct.positions.get(symbol, 0)
    if (pos if side == 0 else -pos) + same + qty > INT64_MAX:
        return "size_limit", f"position plus open orders would pass {most}"
    return None


def _int64(value: int, low: int = 0) -> bool:
    return low <= value <= INT64_MAX


NEW_SHAPE = {"side": 1, "type": 3, "tif": 2, "stp": 4}
"""Small integer fields of a ``new`` command and their largest value."""


def replay_problem(v: TradingVenue, cmd: Command) -> Problem | None:
    """Why a command read back from the journal or log (its types already read by the
    codec, ``journal.decode``) must not be applied, or None: its ranges, the symbol and
    account it names (this venue's?) and the int64 bounds. Account limits are not re-run
    (see the module docstring), and neither is anything the engine refuses by itself."""
    if not _int64(cmd.ts):
        return "malformed", "ts must be a non-negative int64"
    symbol = cmd.symbol if not isinstance(cmd, Kill) else None
    if symbol is not None and symbol not in v.exchanges:
        return "unknown_symbol", f"unknown symbol {symbol!r}"
    if isinstance(cmd, Sim):
        if not 0 <= cmd.n <= SIM_STEPS_MAX:
            return "malformed", f"a sim command needs 0..{SIM_STEPS_MAX} steps"
        return None
    if isinstance(cmd, SetState):
        if cmd.state not in SYMBOL_STATES:
            return "malformed", "a state command needs a known state"
        return None
    if cmd.account not in v.accounts:
        return "unknown_account", f"unknown account {cmd.account!r}"
    if isinstance(cmd, Kill | MassCancel):
        return None
    if isinstance(cmd, Cancel):
        ok = _int64(cmd.order_id, INT64_MIN)
        return None if ok else ("malformed", "cancel needs an int64 order id")
    if isinstance(cmd, Replace):
        if not (_int64(cmd.order_id, INT64_MIN) and _int64(cmd.price) and _int64(cmd.qty)):
            return "malformed", "replace needs an int64 order id and int64 price and qty"
        order = v.orders.get(cmd.order_id)
        if order is None or not order.open or order.account != cmd.account:
            return None  # the engine refuses it by itself, as it did the first time
        as_new = Replaced(order.symbol, order.side, order.order_type, cmd.price, cmd.qty)
        return bounds_problem(v, cmd.account, as_new, order)
    return _new_problem(v, cmd)


def _new_problem(v: TradingVenue, cmd: New) -> Problem | None:
    small = (("side", cmd.side), ("type", cmd.type), ("tif", cmd.tif), ("stp", cmd.stp))
    for key, value in small:
        if not 0 <= value <= NEW_SHAPE[key]:
            return "malformed", f"{key} must be an int from 0 to {NEW_SHAPE[key]}"
    sizes = (("price", cmd.price), ("qty", cmd.qty), ("display", cmd.display), ("stop", cmd.stop))
    for key, value in sizes:
        if not _int64(value):
            return "size_limit", f"{key} {value} does not fit int64"
    return bounds_problem(v, cmd.account, cmd)
