"""The order-entry vocabulary: message fields and their values, refusals, and the parsing
helpers that turn decimal strings into the instrument's integer units."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from orderbook_core.engine_types import ExecType, OrderType, Reason, SelfTrade, TimeInForce

Report = dict[str, Any]

SIDES = {"buy": 0, "sell": 1}
SIDE_NAMES = ("buy", "sell")
TYPES = {
    "limit": OrderType.LIMIT,
    "market": OrderType.MARKET,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
}
TYPE_NAMES = {int(v): k for k, v in TYPES.items()}
TIFS = {"gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC, "fok": TimeInForce.FOK}
STPS = {
    "allow": SelfTrade.ALLOW,
    "cancel_newest": SelfTrade.CANCEL_NEWEST,
    "cancel_oldest": SelfTrade.CANCEL_OLDEST,
    "cancel_both": SelfTrade.CANCEL_BOTH,
    "decrement": SelfTrade.DECREMENT,
}
EXEC_NAMES = {int(x): x.name.lower() for x in ExecType}
ENGINE_REASONS = {int(r): r.name.lower() for r in Reason}
SYMBOL_STATES = ("open", "halted", "closed")
CLOSED_EXECS = (ExecType.REJECTED, ExecType.FILL, ExecType.CANCELLED)


@dataclass(frozen=True)
class Reject:
    """A refusal before matching: nothing changed, nothing logged."""

    reason: str
    text: str
    cl_ord_id: str = ""

    def report(self, op: str) -> Report:
        out: Report = {"type": "reject", "op": op, "reason": self.reason, "text": self.text}
        if self.cl_ord_id:
            out["cl_ord_id"] = self.cl_ord_id
        return out


@dataclass(frozen=True)
class Original:
    """A repeated new-order message: its first acknowledgement, sent again."""

    report: Report


def fingerprint(message: Mapping[str, Any]) -> str:
    """What makes two new-order messages "the same order" (everything the trader chose)."""
    return hashlib.sha256(orjson.dumps(dict(message), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


NEW_FIELDS = frozenset(
    {
        "op",
        "cl_ord_id",
        "symbol",
        "side",
        "type",
        "price",
        "qty",
        "tif",
        "post_only",
        "display_qty",
        "stop_price",
        "stp",
    }
)


DECIMAL_CHARS = 40
"""Longest decimal string a price or quantity may be (int64 needs at most 20 digits)."""


def choice(m: Mapping[str, Any], name: str, options: Mapping[str, int], default: str | None) -> int:
    value = m.get(name, default)
    if not isinstance(value, str) or value not in options:  # a list or object, too
        raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return options[value]


def units(m: Mapping[str, Any], name: str, unit: Any, required: bool) -> int:
    value = m.get(name)
    if value is None:
        if required:
            raise ValueError(f"{name} is required")
        return 0
    if not isinstance(value, str):
        raise ValueError(f'{name} must be a decimal string such as "1.25", got {value!r}')
    if len(value) > DECIMAL_CHARS:
        raise ValueError(f"{name} is longer than {DECIMAL_CHARS} characters")
    try:
        units: int = unit.to_units(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return units
