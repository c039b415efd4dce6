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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orderbook_core.engine_types import OrderType
from trading.messages import SYMBOL_STATES

if TYPE_CHECKING:
    from trading.venue import Order, TradingVenue

INT64_MAX = 2**63 - 1
"""The largest number the engine stores: no size, price, level or total may pass it."""
SIM_STEPS_MAX = 100_000
"""Most simulated orders one ``sim`` command may ask for (the order path asks for 2,000)."""
RESTING = (int(OrderType.LIMIT), int(OrderType.STOP_LIMIT))
"""Order types that rest at their price (and so add to that level)."""

Problem = tuple[str, str]


def field_problem(name: str, value: int, unit: Any) -> str | None:
    """Why one integer field of an order cannot be stored by the engine, or None."""
    if value < 0:
        return f"{name} must not be negative"
    if value > INT64_MAX:
        return f"{name} is more than the venue can hold (at most {unit.to_str(INT64_MAX)})"
    return None


def limits_problem(
    v: TradingVenue, account: int, cmd: Mapping[str, Any], replacing: Order | None = None
) -> Problem | None:
    """The first account limit the order would break, or None. For a replace, ``cmd`` is
    the order as it would be and ``replacing`` the open order it replaces (left out of the
    account's open orders and their counts)."""
    symbol, side, qty = cmd["s"], cmd["side"], cmd["qty"]
    x = v.exchanges[symbol]
    limits = v.risk.limits(v.accounts[account], x.instrument)
    if limits.max_qty and qty > limits.max_qty:
        return "max_qty", f"qty exceeds the account's maximum of {limits.max_qty_text}"
    ref = v.reference_price(symbol)
    price = cmd["px"] or cmd["stop"] or ref
    if limits.max_notional and price and price * qty > limits.max_notional:
        return "max_notional", f"notional exceeds the account's maximum of {limits.notional_text}"
    if cmd["px"] and ref and abs(cmd["px"] - ref) * 10_000 > limits.collar_bps * ref:
        return (
            "price_collar",
            f"price is more than {limits.collar_bps / 100:g}% from the reference price "
            f"{x.instrument.tick.to_str(ref)}",
        )
    acct = v.state[account]
    others = [o for o in acct.open_orders.values() if o is not replacing]
    if replacing is None and len(others) >= limits.max_open_orders:
        return "max_open_orders", f"{limits.max_open_orders} orders are already open"
    if limits.max_position:
        pos = acct.positions.get(symbol, 0)
        same_side = sum(o.leaves for o in others if o.symbol == symbol and o.side == side)
        exposure = pos + same_side + qty if side == 0 else -pos + same_side + qty
        if exposure > limits.max_position:
            text = f"position plus open orders would exceed {limits.position_text}"
            return "position_limit", text
    if side == 0 and acct.cash is not None:
        committed = sum(
            (o.price or v.reference_price(o.symbol)) * o.leaves * v.scale[o.symbol]
            for o in others
            if o.side == 0
        )
        needed = committed + price * qty * v.scale[symbol]
        if needed > acct.cash:
            return (
                "buying_power",
                f"buys would need {needed.normalize():f}, the account has "
                f"{acct.cash.normalize():f}",
            )
    return None


def bounds_problem(
    v: TradingVenue, account: int, cmd: Mapping[str, Any], replacing: Order | None = None
) -> Problem | None:
    """The first int64 bound the order would break (reason ``size_limit``), or None; the
    order's own fields are already known to fit (``field_problem``)."""
    symbol, side, qty, px = cmd["s"], cmd["side"], cmd["qty"], cmd["px"]
    tick, lot = v.units[symbol]
    most = lot.to_str(INT64_MAX)
    engine = v.exchanges[symbol].engine
    if replacing is not None and replacing.cum + qty > INT64_MAX:
        return "size_limit", f"filled plus open qty of the order would pass {most}"
    if px and cmd["type"] in RESTING:
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
    price = px or cmd["stop"] or v.reference_price(symbol)
    if price * qty > INT64_MAX:
        return "size_limit", "notional is more than the venue can hold (int64 ticks x lots)"
    acct = v.state[account]
    same = worth = 0
    for o in acct.open_orders.values():
        if o is not replacing and o.symbol == symbol and o.side == side:
            same += o.leaves
            worth += (o.price or price) * o.leaves
    if same + qty > INT64_MAX:
        return "size_limit", f"open orders on that side would pass {most}"
    if worth + price * qty > INT64_MAX:
        return "size_limit", "open orders' notional on that side would pass int64 ticks x lots"
    pos = acct.positions.get(symbol, 0)
    if (pos if side == 0 else -pos) + same + qty > INT64_MAX:
        return "size_limit", f"position plus open orders would pass {most}"
    return None


def _int(cmd: Mapping[str, Any], key: str, low: int = 0, high: int = INT64_MAX) -> bool:
    value = cmd.get(key)
    return type(value) is int and low <= value <= high


KINDS = frozenset({"sim", "state", "new", "cancel", "replace", "mass_cancel", "kill"})
NEW_SHAPE = {"side": 1, "type": 3, "tif": 2, "stp": 4}
"""Small integer fields of a ``new`` command and their largest value."""


def replay_problem(v: TradingVenue, cmd: Mapping[str, Any]) -> Problem | None:
    """Why a command read back from the journal or log must not be applied, or None: its
    shape (every field ``apply`` reads, of the right type and range, naming a symbol and
    account this venue has) and the int64 bounds. Account limits are not re-run (see the
    module docstring), and neither is anything the engine refuses by itself."""
    kind = cmd.get("k")
    if not isinstance(kind, str) or kind not in KINDS:
        return "malformed", f"unknown command kind {kind!r}"
    if not _int(cmd, "ts"):
        return "malformed", "ts must be a non-negative int64"
    symbol = cmd.get("s")
    if symbol is not None and (not isinstance(symbol, str) or symbol not in v.exchanges):
        return "unknown_symbol", f"unknown symbol {cmd.get('s')!r}"
    if kind == "sim":
        if "s" not in cmd or cmd["s"] is None or not _int(cmd, "n", 0, SIM_STEPS_MAX):
            return "malformed", f"a sim command needs a symbol and 0..{SIM_STEPS_MAX} steps"
        return None
    if kind == "state":
        if cmd.get("s") is None or cmd.get("state") not in SYMBOL_STATES:
            return "malformed", "a state command needs a symbol and a known state"
        return None
    if type(cmd.get("a")) is not int or cmd["a"] not in v.accounts:
        return "unknown_account", f"unknown account {cmd.get('a')!r}"
    if kind == "kill":
        return None if type(cmd.get("on")) is bool else ("malformed", "kill needs on: bool")
    if kind == "mass_cancel":
        return None if "s" in cmd else ("malformed", "mass_cancel needs s (a symbol or null)")
    if cmd.get("s") is None:
        return "malformed", f"a {kind} command needs a symbol"
    if kind == "cancel":
        ok = _int(cmd, "oid", -INT64_MAX - 1)
        return None if ok else ("malformed", "cancel needs an int64 oid")
    if kind == "replace":
        if not (_int(cmd, "oid", -INT64_MAX - 1) and _int(cmd, "px") and _int(cmd, "qty")):
            return "malformed", "replace needs an int64 oid and int64 px and qty"
        order = v.orders.get(cmd["oid"])
        if order is None or not order.open or order.account != cmd["a"]:
            return None  # the engine refuses it by itself, as it did the first time
        as_new = {"s": order.symbol, "side": order.side, "type": order.order_type, "stop": 0}
        return bounds_problem(v, cmd["a"], as_new | {"px": cmd["px"], "qty": cmd["qty"]}, order)
    return _new_problem(v, cmd)


def _new_problem(v: TradingVenue, cmd: Mapping[str, Any]) -> Problem | None:
    cl = cmd.get("cl")
    if not isinstance(cl, str) or not isinstance(cmd.get("fp"), str):
        return "malformed", "a new command needs cl and fp strings"
    if type(cmd.get("po")) is not bool:
        return "malformed", "a new command needs po: bool"
    for key, high in NEW_SHAPE.items():
        if not _int(cmd, key, 0, high):
            return "malformed", f"{key} must be an int from 0 to {high}"
    for key in ("px", "qty", "disp", "stop"):
        if type(cmd.get(key)) is not int:
            return "malformed", f"{key} must be an int"
        if cmd[key] < 0 or cmd[key] > INT64_MAX:
            return "size_limit", f"{key} {cmd[key]} does not fit int64"
    return bounds_problem(v, cmd["a"], cmd)
