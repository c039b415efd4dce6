"""A venue for the tests, without I/O: its accounts and warmed books, order messages, a
comparable view of its state, and the int64-bound cases of issue 14 (the poisoned
sizes and journal records)."""

from __future__ import annotations

from typing import Any

import orjson

from trading.journal import encode
from trading.messages import New, Sim
from trading.risk import Account, Limits
from trading.simulator import SimulatedExchange
from trading.venue import Command, Original, Reject, TradingVenue

SYMBOLS = ("BTC-USD", "ETH-USD")
ALICE, BOB, OPERATOR = 1001, 1002, 1000


DEFAULT_LIMITS = Limits()
"""What an account gets when nothing says otherwise (finite, see docs/order-entry.md)."""


def accounts(limits: Limits = DEFAULT_LIMITS) -> list[Account]:
    return [
        Account(ALICE, "alice", "alice-key-1", limits),
        Account(BOB, "bob", "bob-key-12", limits),
        Account(OPERATOR, "operator", "operator-key", admin=True),
    ]


def venue(limits: Limits = DEFAULT_LIMITS, warm: int = 300) -> tuple[TradingVenue, list[Command]]:
    """A venue whose books the simulated flow has filled; and the commands that did it."""
    v = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts(limits))
    log: list[Command] = []
    for s in SYMBOLS:
        cmd = Sim(s, warm, 1)
        v.apply(cmd)
        log.append(cmd)
    return v, log


def new(cl: str, side: str = "buy", price: str | None = "64900.00", qty: str = "0.01", **kw: Any):
    m: dict[str, Any] = {"op": "new", "cl_ord_id": cl, "symbol": "BTC-USD", "side": side}
    m |= {"type": "limit" if price else "market", "qty": qty, **kw}
    if price:
        m["price"] = price
    return m


def run(v: TradingVenue, log: list[Command], account: int, m: dict[str, Any]) -> Any:
    checked = v.check(account, m, 5)
    if isinstance(checked, Reject | Original):
        return checked
    log.append(checked)
    return v.apply(checked)


def state(v: TradingVenue) -> Any:
    return (
        {
            s: (x.engine.depth(0), x.engine.depth(1), x.book_seq, x.trade_seq)
            for s, x in v.exchanges.items()
        },
        {
            a: (s.seq, list(s.reports), s.positions, sorted(s.open_orders))
            for a, s in v.state.items()
        },
    )


POISON = "46116860184273.87904"  # 2**62 lots of 0.00001 BTC
OFF = Limits(
    max_qty="off", max_notional="off", max_position="off", buying_power="off", collar_bps=10_000
)
"""Every account limit off: only the venue's int64 bounds stand."""
FIRST_ID = 10**12


def sane(v: TradingVenue) -> None:
    """Every level of every book holds a size an int64 holds, and more than nothing."""
    for x in v.exchanges.values():
        for side in (0, 1):
            for _price, size, _n in x.engine.depth(side):
                assert 0 < size <= 2**63 - 1


def sizes_in(events: list[Any]) -> list[int]:
    return [c[2] for e in events if type(e).__name__ == "BookUpdate" for c in e.changes]


def old_new(account: int, cl: str, px: int, qty: int) -> New:
    """A new-order command as the venue journaled it before the int64 bounds existed."""
    return New(account, 7, cl, "BTC-USD", 0, 0, px, qty, 0, False, 0, 0, 1, f"fp-{cl}")


def record(cmd: Command) -> Any:
    """A command as it is read back from the journal (a JSON value)."""
    return orjson.loads(encode(cmd))
