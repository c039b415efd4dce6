"""Pure-Python reference implementation of orderbook_core._text (plain decimal and
ISO-8601 text).

Same answers as the compiled readers, None included: the differential tests
compare the two, and both against the hub's exact readers. Clarity over speed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_TEXT = 64
"""Longest number text read (feedhandler.frames.MAX_NUMBER_TEXT)."""
MAX_EXP = 18
"""Largest unit exponent a scale reads (10**18 units already fill int64)."""
MIN_YEAR, MAX_YEAR = 1970, 2261
"""Years a stamp may have here: int64 ns run out in 2262."""

_PLAIN = re.compile(r"\+?([0-9]*)(?:\.([0-9]*))?")
_STAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?Z?"
)


class UnitScale:
    """Reads decimal strings as whole units of ``mant * 10**-exp`` (a tick or lot size)."""

    def __init__(self, mant: int = 1, exp: int = 0) -> None:
        if mant <= 0 or exp < 0:
            raise ValueError(f"a unit needs mant > 0 and exp >= 0, got {mant}, {exp}")
        self.usable = mant <= INT64_MAX and exp <= MAX_EXP
        self.mant = mant if self.usable else 1
        self.exp = exp if self.usable else 0

    def text(self, units: object) -> str | None:
        """``units`` as the decimal string of this unit (``exp`` decimals, ``-`` when
        negative), or None where the exact formatter must answer (not an int, or past
        int64 once scaled)."""
        if not self.usable or type(units) is not int:
            return None
        scaled = units * self.mant  # mant >= 1: past int64 whenever units is
        if not INT64_MIN <= scaled <= INT64_MAX:
            return None
        digits = str(abs(scaled)).rjust(self.exp + 1, "0")
        sign = "-" if scaled < 0 else ""
        if not self.exp:
            return sign + digits
        return f"{sign}{digits[: -self.exp]}.{digits[-self.exp :]}"

    def units(self, text: object) -> int | None:
        """The whole units in ``text``, or None where the exact reader must answer."""
        if not self.usable or type(text) is not str or len(text) > MAX_TEXT:
            return None
        m = _PLAIN.fullmatch(text)
        if m is None or not (m.group(1) or m.group(2)):
            return None
        frac = m.group(2) or ""
        value = int(m.group(1) + frac)
        if value > INT64_MAX:
            return None
        if len(frac) <= self.exp:
            scaled: int = value * 10 ** (self.exp - len(frac))
            if scaled > INT64_MAX or scaled % self.mant:
                return None
            return scaled // self.mant
        if len(frac) - self.exp > 18:
            return None
        divisor: int = self.mant * 10 ** (len(frac) - self.exp)
        if divisor > INT64_MAX or value % divisor:
            return None
        return value // divisor


def iso_to_ns(text: object) -> int | None:
    """A plain UTC ISO-8601 stamp as int64 ns since the epoch, or None where the exact
    reader must answer (hub.times.iso_ns)."""
    if type(text) is not str:
        return None
    m = _STAMP.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    ns = (m.group(7) or "").ljust(9, "0")[:9]
    return int(moment.timestamp()) * 1_000_000_000 + int(ns)


def rounded_units(text: str, exp: int) -> int | None:
    """A plain decimal rounded half up to whole units of ``10**-exp``
    (hub.decimals.round_units), or None where the exact reader must answer."""
    if len(text) > MAX_TEXT:
        return None
    m = _PLAIN.fullmatch(text)
    if m is None or not (m.group(1) or m.group(2)):
        return None
    frac = m.group(2) or ""
    kept = int((m.group(1) + frac[:exp]) or "0")
    if kept > INT64_MAX:
        return None
    value: int = kept * 10 ** max(0, exp - len(frac))
    if value > INT64_MAX:
        return None
    if frac[exp : exp + 1] >= "5":
        if value >= INT64_MAX:
            return None
        value += 1
    return value


_EXPONENT = re.compile(r"(.*)[eE]([+-]?)([0-9]{1,3})", re.DOTALL)


def _json_text(text: str, mant: int, exp: int, rounding: bool) -> int | None:
    """A JSON number's text (an exponent of at most three digits allowed) as whole units of
    ``mant * 10**-exp``, or with ``rounding`` (``mant`` 1) rounded half up to them; None
    where the exact reader must answer."""
    if len(text) > MAX_TEXT:
        return None
    if "e" in text or "E" in text:
        m = _EXPONENT.fullmatch(text)
        if m is None or "e" in m.group(1) or "E" in m.group(1):
            return None
        text = m.group(1)
        exp += -int(m.group(3)) if m.group(2) == "-" else int(m.group(3))
        if not 0 <= exp <= MAX_EXP:
            return None
    if rounding:
        return rounded_units(text, exp) if mant == 1 else None
    return UnitScale(mant, exp).units(text)


def _kind_units(scale: UnitScale, text: object, kind: type[str], rounding: bool) -> int | None:
    if not scale.usable or type(text) is not kind:
        return None
    return _json_text(str(text), scale.mant, scale.exp, rounding)


def json_units(text: object, scale: UnitScale, rounding: bool = False) -> int | None:
    """The whole units of ``scale`` in a JSON number's text (a ``str`` of any type; an
    exponent of at most three digits allowed), with ``rounding`` rounded half up to the
    scale's decimals; None where the exact reader must answer. See orderbook_core._text."""
    if not scale.usable or not isinstance(text, str) or not text.isascii():
        return None
    return _json_text(str(text), scale.mant, scale.exp, rounding)


def list_levels(
    rows: object,
    side: int,
    tick: UnitScale,
    lot: UnitScale,
    sides: dict[str, int] | None = None,
    timed: bool = False,
    kind: type[str] = str,
    rounding: bool = False,
    positive: bool = False,
) -> tuple[list[tuple[int, int, int]], int] | None:
    """Book rows of plain strings as ``([(side, price, size), ...], latest time)``, or None
    if any row is not (the exact path then reads them all). See orderbook_core._text."""
    if type(rows) is not list:
        return None
    first = 0 if sides is None else 1
    out, ts = [], 0
    for row in rows:
        if type(row) not in (list, tuple) or len(row) < first + 2 + timed:
            return None
        if sides is not None:
            name = row[0]
            found = sides.get(name) if type(name) is str else None
            if found is None:
                return None
            side = found
        if kind is str:
            price, size = tick.units(row[first]), lot.units(row[first + 1])
        else:
            price = _kind_units(tick, row[first], kind, False)
            size = _kind_units(lot, row[first + 1], kind, rounding)
        if not price or size is None or (positive and not size):
            return None
        if timed:
            t = UnitScale(1, 9).units(row[first + 2])
            if t is None:
                return None
            ts = max(ts, t)
        out.append((side, price, size))
    return out, ts


def int_trades(rows: object, sides: dict[str, int]) -> list[tuple[int, int, int, int]] | None:
    """Trade rows ``[timestamp, side, price, qty, ...]`` of JSON integers as ``(timestamp,
    side, price, qty)``, or None if any row is not plain. See orderbook_core._text."""
    if type(rows) is not list:
        return None
    out = []
    for row in rows:
        if type(row) is not list or len(row) < 4:
            return None
        ts, said, price, qty = row[0], row[1], row[2], row[3]
        side = sides.get(said) if type(said) is str else None
        if (
            side is None
            or not (type(ts) is int and 0 <= ts <= INT64_MAX)
            or not (type(price) is int and 0 < price <= INT64_MAX)
            or not (type(qty) is int and 0 < qty <= INT64_MAX)
        ):
            return None
        out.append((ts, side, price, qty))
    return out


def dict_levels(
    rows: object,
    sides: dict[str, int],
    side_key: str,
    price_key: str,
    size_key: str,
    time_key: str,
    tick: UnitScale,
    lot: UnitScale,
) -> tuple[tuple[tuple[int, int, int], ...], int] | None:
    """Book rows that are JSON objects as ``((side, price, size), ...)`` and the latest
    ``time_key`` stamp in ns, or None if any row is not plain. See orderbook_core._text."""
    if type(rows) is not list:
        return None
    out, ts = [], 0
    for row in rows:
        if type(row) is not dict:
            return None
        name = row.get(side_key)
        side = sides.get(name) if type(name) is str else None
        price, size = tick.units(row.get(price_key)), lot.units(row.get(size_key))
        t = iso_to_ns(row.get(time_key))
        if side is None or not price or size is None or t is None:
            return None
        ts = max(ts, t)
        out.append((side, price, size))
    return tuple(out), ts


def bad_level(levels: Iterable[Any]) -> int:
    """The index of the first level the book core would refuse, or -1. See
    orderbook_core._text."""
    for i, level in enumerate(levels):
        if type(level) is not tuple or len(level) != 3:
            return i
        side, price, size = level
        if type(side) is not int or type(price) is not int or type(size) is not int:
            return i
        if side not in (0, 1) or not 0 < price <= INT64_MAX or not 0 <= size <= INT64_MAX:
            return i
    return -1


Side = list[tuple[int, int]]


def book_diff(
    before: tuple[Side, Side], after: tuple[Side, Side]
) -> tuple[tuple[int, int, int], ...]:
    """The absolute level changes that turn book ``before`` into book ``after``: per side,
    the deleted prices (in ``before``'s order), then the new or resized levels (in
    ``after``'s order). See orderbook_core._text."""
    changes: list[tuple[int, int, int]] = []
    for side in (0, 1):
        old, new = dict(before[side]), dict(after[side])
        changes += [(side, p, 0) for p in old if p not in new]
        changes += [(side, p, s) for p, s in new.items() if old.get(p) != s]
    return tuple(changes)
