"""Trader accounts and their pre-trade limits.

Limits are written as decimals in the instrument's own terms (quantities in
base units, notional in quote units) and resolved per instrument into
integer lots and ticks x lots once, so every check is integer arithmetic.
Every limit has a finite default (``Limits``), for the demo accounts and for
an accounts file that leaves it out; ``"off"`` turns a decimal limit off
explicitly. Off or not, the venue's int64 bounds (``trading/checks.py``) still
hold every order, level and account total to what the engine can store. The
accounts file (TOML) looks like::

    [defaults]               # every account's limits unless it sets its own
    max_qty = "10"
    max_notional = "1000000"
    max_position = "50"      # or "off": no position limit (the int64 bounds remain)
    max_open_orders = 200
    collar_bps = 1000        # 10 % around the last trade (or the mid)
    rate_per_s = 200         # messages per second (burst = 2 s of it)
    buying_power = "250000"  # starting cash, quote units

    [[account]]
    id = 1001
    name = "alice"
    key = "…32 or more characters…"  # the API key, also the secret of HS256 tokens
    max_qty = "2"            # overrides the default for this account only
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from hub.auth import MIN_KEY_LENGTH
from hub.errors import HubError
from hub.events import Instrument
from hub.tomlfile import load_toml

FIRST_ACCOUNT_ID = 1000
"""Trader account ids start here; the simulated flow's accounts are below it."""


OFF = "off"
"""The value that turns a decimal limit off (the int64 bounds still apply)."""


@dataclass(frozen=True)
class Limits:
    """One account's limits; the defaults are what an account gets when nothing says
    otherwise (documented in docs/order-entry.md)."""

    max_qty: str = "1000"
    """Base units per order."""
    max_notional: str = "1000000"
    """Quote units per order (price x qty; market orders at the reference price)."""
    max_position: str = "10000"
    """Base units: |position + open orders on the order's side| per symbol."""
    max_open_orders: int = 200
    collar_bps: int = 1000
    rate_per_s: int = 200
    buying_power: str = "10000000"
    """Starting cash in quote units: buys (open and new, at their limit price or the
    reference price) must fit what is left of it after fills."""

    def cash(self) -> Decimal | None:
        """The starting buying power, or None when it is off."""
        return None if is_off(self.buying_power) else Decimal(self.buying_power)


def is_off(text: str) -> bool:
    """Whether a decimal limit is off (``"off"``; an empty string from code, too)."""
    return text in ("", OFF)


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    key: str
    limits: Limits = Limits()
    admin: bool = False
    """May change a symbol's trading state (open, halted, closed)."""


@dataclass(frozen=True)
class Resolved:
    """Limits of one account on one instrument, in integer units (0 = no limit)."""

    max_qty: int
    max_qty_text: str
    max_notional: int
    notional_text: str
    max_position: int
    position_text: str
    max_open_orders: int
    collar_bps: int


class RiskLimits:
    """Resolves and caches each (account, instrument)'s integer limits (the cache holds at
    most accounts x instruments entries: both are fixed at start)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str, str], Resolved] = {}

    def limits(self, account: Account, inst: Instrument) -> Resolved:
        key = (account.id, inst.venue, inst.symbol)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = resolve(account.limits, inst)
        return hit


def resolve(limits: Limits, inst: Instrument) -> Resolved:
    lot, tick = inst.lot, inst.tick
    notional = 0
    if not is_off(limits.max_notional):
        # notional in quote units / (tick x lot) = the limit in ticks x lots (rounded down)
        notional = int(Decimal(limits.max_notional) / (Decimal(tick.text) * Decimal(lot.text)))
    return Resolved(
        _lots(limits.max_qty, inst),
        limits.max_qty,
        notional,
        limits.max_notional,
        _lots(limits.max_position, inst),
        limits.max_position,
        limits.max_open_orders,
        limits.collar_bps,
    )


def _lots(text: str, inst: Instrument) -> int:
    """A quantity limit in whole lots, rounded down onto the lot grid (0: off)."""
    if is_off(text):
        return 0
    return int(Decimal(text) / Decimal(inst.lot.text))


@dataclass(frozen=True)
class CashUnit:
    """The unit buying power is kept in, as an integer: the finest tick x lot of a venue's
    symbols, so every symbol's fills move cash by a whole number of units."""

    places: int
    """Decimal places of the unit (7: one unit is 0.0000001 of the quote currency)."""
    scale: dict[str, int]
    """Units per tick x lot, per symbol (exact)."""

    @classmethod
    def of(cls, instruments: Mapping[str, Instrument]) -> CashUnit:
        steps = {s: Decimal(i.tick.text) * Decimal(i.lot.text) for s, i in instruments.items()}
        places = max((-int(d.as_tuple().exponent) for d in steps.values()), default=0)
        return cls(places, {s: int(d.scaleb(places)) for s, d in steps.items()})

    def units(self, amount: Decimal | None) -> int | None:
        """An amount of quote currency in units, rounded down (None stays None)."""
        if amount is None:
            return None
        return int(amount.scaleb(self.places).to_integral_value(ROUND_FLOOR))

    def decimal(self, cash: int) -> Decimal:
        """Units as an amount of quote currency."""
        return Decimal(cash).scaleb(-self.places)

    def text(self, cash: int) -> str:
        """Units as a decimal string without trailing zeros (``"2596"``)."""
        return f"{self.decimal(cash).normalize():f}"


def load_accounts(path: Path) -> list[Account]:
    """Accounts from a TOML file; every mistake is named with the file and the account."""
    data = load_toml(path, "accounts file")
    defaults = _limits(data.get("defaults", {}), Limits(), f"{path} [defaults]")
    out: list[Account] = []
    seen_ids: set[int] = set()
    seen_keys: set[str] = set()
    for i, raw in enumerate(data.get("account", []), start=1):
        where = f"{path} account #{i}"
        if not isinstance(raw, dict):
            raise HubError(f"{where}: must be a table")
        ident, name, key = raw.get("id"), raw.get("name", ""), raw.get("key")
        if not isinstance(ident, int) or ident < FIRST_ACCOUNT_ID:
            raise HubError(f"{where}: id must be an integer >= {FIRST_ACCOUNT_ID}")
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
            raise HubError(
                f"{where}: key must be a string of at least {MIN_KEY_LENGTH} characters "
                "(it is also the HS256 secret of the account's tokens)"
            )
        if ident in seen_ids or key in seen_keys:
            raise HubError(f"{where}: id {ident} or its key is used twice")
        seen_ids.add(ident)
        seen_keys.add(key)
        admin = raw.get("admin", False)
        if not isinstance(admin, bool):
            raise HubError(f"{where}: admin must be true or false")
        rest = {k: v for k, v in raw.items() if k not in ("id", "name", "key", "admin")}
        out.append(Account(ident, str(name), key, _limits(rest, defaults, where), admin))
    if not out:
        raise HubError(f"accounts file {path}: no [[account]] entries")
    return out


def _limits(raw: dict[str, Any], base: Limits, where: str) -> Limits:
    known = {f.name: f.type for f in fields(Limits)}
    for name, value in raw.items():
        if name not in known:
            raise HubError(f"{where}: unknown limit {name!r} (one of {', '.join(known)})")
        want_int = known[name] in (int, "int")
        if want_int and (not isinstance(value, int) or value < 0):
            raise HubError(f"{where}: {name} must be a non-negative integer")
        if not want_int:
            if not isinstance(value, str):
                raise HubError(f'{where}: {name} must be a decimal string such as "10"')
            if value == OFF:
                continue
            try:
                if not Decimal(value).is_finite() or Decimal(value) <= 0:
                    raise ValueError
            except (ArithmeticError, ValueError):
                raise HubError(
                    f'{where}: {name} must be a positive decimal or "{OFF}", got {value!r}'
                ) from None
    return replace(base, **raw)


def demo_accounts(count: int = 10) -> list[Account]:
    """Accounts for the demo and load tests: ``trader-<n>`` logs on with key ``demo-key-<n>``;
    ``operator`` (key ``demo-operator-key``) may halt and reopen symbols."""
    traders = [
        Account(FIRST_ACCOUNT_ID + n, f"trader-{n}", f"demo-key-{n}") for n in range(1, count + 1)
    ]
    return [*traders, Account(FIRST_ACCOUNT_ID, "operator", "demo-operator-key", admin=True)]
