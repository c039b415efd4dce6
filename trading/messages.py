"""The order-entry vocabulary: message fields and their values, the commands the venue
logs, the reports it sends, refusals, and the parsing helpers that turn decimal strings
into the instrument's integer units.

A ``Command`` is one typed record per kind (``Sim`` … ``Kill``): what ``TradingVenue.check``
makes, ``TradingVenue.apply`` runs and the journal (``trading/journal.py``) writes. Reports
are wire dicts, typed as ``TypedDict`` (``ExecReport`` and the others): they go out as
JSON as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

import orjson

from hub.event_codec import slotted
from orderbook_core.engine_types import ExecType, OrderType, Reason, SelfTrade, TimeInForce

# --- commands: what changes state, and what the journal holds --------------------------


@slotted
@dataclass(frozen=True, slots=True)
class Sim:
    """Run ``n`` orders of the simulated flow on ``symbol``."""

    kind: ClassVar[str] = "sim"
    symbol: str
    n: int
    ts: int


@slotted
@dataclass(frozen=True, slots=True)
class SetState:
    """An operator's trading-state change of one symbol (open, halted, closed)."""

    kind: ClassVar[str] = "state"
    symbol: str
    state: str
    ts: int


@slotted
@dataclass(frozen=True, slots=True)
class New:
    """A trader's new order, in the instrument's integer units (ticks, lots)."""

    kind: ClassVar[str] = "new"
    account: int
    ts: int
    cl_ord_id: str
    symbol: str
    side: int
    type: int
    price: int
    qty: int
    tif: int
    post_only: bool
    display: int
    stop: int
    stp: int
    fingerprint: str
    """What the trader chose (``fingerprint``): a repeat of it is answered, not re-entered."""


@slotted
@dataclass(frozen=True, slots=True)
class Cancel:
    kind: ClassVar[str] = "cancel"
    account: int
    ts: int
    symbol: str
    order_id: int


@slotted
@dataclass(frozen=True, slots=True)
class Replace:
    kind: ClassVar[str] = "replace"
    account: int
    ts: int
    symbol: str
    order_id: int
    price: int
    qty: int


@slotted
@dataclass(frozen=True, slots=True)
class MassCancel:
    """Cancel the account's open orders on ``symbol``, or on every symbol (None)."""

    kind: ClassVar[str] = "mass_cancel"
    account: int
    ts: int
    symbol: str | None


@slotted
@dataclass(frozen=True, slots=True)
class Kill:
    """The account's kill switch: on cancels everything open and refuses new orders."""

    kind: ClassVar[str] = "kill"
    account: int
    ts: int
    on: bool


Command = Sim | SetState | New | Cancel | Replace | MassCancel | Kill


# --- reports: what the traders are sent ---------------------------------------------


class ExecReport(TypedDict):
    """An execution report: what happened to one of the account's orders (gapless ``seq``
    per account)."""

    type: Literal["exec"]
    seq: int
    account: int
    cl_ord_id: str
    order_id: str
    symbol: str
    exec_type: str
    side: str
    order_type: str
    price: str | None
    last_qty: str
    last_price: str | None
    leaves_qty: str
    cum_qty: str
    reason: str | None
    position: str
    ts: int


class RejectReport(TypedDict):
    """A refusal before matching (no seq: nothing changed)."""

    type: Literal["reject"]
    op: str
    reason: str
    text: str
    cl_ord_id: NotRequired[str]


class StatusReport(TypedDict):
    """An order's current state, the answer to ``status``."""

    type: Literal["status"]
    cl_ord_id: str
    order_id: str
    symbol: str
    side: str
    open: bool
    price: str | None
    leaves_qty: str
    cum_qty: str


Report = ExecReport | RejectReport | StatusReport

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

    def report(self, op: str) -> RejectReport:
        out: RejectReport = {"type": "reject", "op": op, "reason": self.reason, "text": self.text}
        if self.cl_ord_id:
            out["cl_ord_id"] = self.cl_ord_id
        return out


@dataclass(frozen=True)
class Original:
    """A repeated new-order message: its first acknowledgement, sent again."""

    report: ExecReport


def fingerprint(message: Mapping[str, Any]) -> str:
    """What makes two new-order messages "the same order" (everything the trader chose)."""
    plain = message if type(message) is dict else dict(message)
    return hashlib.sha256(orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


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
