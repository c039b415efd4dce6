"""Exact conversion between decimal strings and integer ticks/lots.

Decimal strings exist only at the edges (venue JSON, client JSON, SQL views);
inside the hub every price is an integer number of ticks and every size an
integer number of lots. Nothing here goes through float or Decimal.

``Unit.to_units`` reads the plain strings venues send with the book core's
compiled reader (``orderbook_core.UnitScale``) and everything else (signs,
spaces, off-grid values, results past int64) with the exact regular-expression
reader ``Unit.exact_units``, which is what decides every refusal. ``Unit.to_str``
formats int64 values in the core too (``UnitScale.text``), any other int with
``Unit.exact_str``.
"""

from __future__ import annotations

import re

from orderbook_core import UnitScale

_DECIMAL = re.compile(r"^([+-]?)(\d+)(?:\.(\d*))?$|^([+-]?)\.(\d+)$")


def parse_decimal(text: str) -> tuple[int, int]:
    """Return ``(mantissa, exponent)`` with ``value == mantissa * 10**-exponent``."""
    m = _DECIMAL.match(text.strip())
    if m is None:
        raise ValueError(f"not a decimal number: {text!r}")
    if m.group(2) is not None:
        sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    else:
        sign, whole, frac = m.group(4), "0", m.group(5)
    mantissa = int(whole + frac)
    return (-mantissa if sign == "-" else mantissa), len(frac)


class Unit:
    """A tick or lot size such as ``"0.01"``: converts strings to integer units and back."""

    __slots__ = ("_div", "_exp", "_mant", "_zero", "formatted", "plain", "scale", "text")

    def __init__(self, text: str) -> None:
        mant, exp = parse_decimal(text)
        if mant <= 0:
            raise ValueError(f"unit size must be positive, got {text!r}")
        self.text = text
        self._mant = mant
        self._exp = exp
        self._div = 10**exp
        self._zero = "0" if exp == 0 else "0." + "0" * exp
        self.scale = UnitScale(mant, exp)
        """The compiled reader of this unit (``orderbook_core.UnitScale``)."""
        self.plain = self.scale.units
        """A plain string's units in int64, or None (ask ``to_units``)."""
        self.formatted = self.scale.text
        """Units in int64 as this unit's decimal string, or None (ask ``to_str``)."""

    def to_units(self, text: str) -> int:
        """Convert a decimal string to a whole number of units; refuse anything off the grid."""
        n = self.plain(text)
        return self.exact_units(text) if n is None else n

    def exact_units(self, text: str) -> int:
        """``to_units`` by regular expression and Python ints: the reference that accepts or
        refuses every string (the compiled reader only ever agrees with it)."""
        mant, exp = parse_decimal(text)
        e = max(exp, self._exp)
        value = mant * 10 ** (e - exp)
        unit = self._mant * 10 ** (e - self._exp)
        units, rest = divmod(value, unit)
        if rest:
            raise ValueError(f"{text!r} is not a multiple of {self.text!r}")
        return int(units)

    def to_str(self, units: int) -> str:
        """Format a whole number of units as a decimal string with this unit's decimals."""
        text = self.formatted(units)
        return self.exact_str(units) if text is None else text

    def exact_str(self, units: int) -> str:
        """``to_str`` with Python ints: the reference for any int (the compiled formatter
        only ever agrees with it)."""
        if units == 0:
            return self._zero
        scaled = units * self._mant
        if self._exp == 0:
            return str(scaled)
        sign = "-" if scaled < 0 else ""
        whole, frac = divmod(abs(scaled), self._div)
        return f"{sign}{whole}.{frac:0{self._exp}d}"

    def __repr__(self) -> str:
        return f"Unit({self.text!r})"

    def __reduce__(self) -> tuple[type[Unit], tuple[str]]:
        """Copied and pickled as its text (the compiled reader it holds is rebuilt)."""
        return Unit, (self.text,)


MAX_EXPONENT = 4000
_NUMBER = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


def round_units(text: str, decimals: int) -> int:
    """Round a JSON number's text to an integer count of 10**-decimals, half away from zero.

    For venues that send prices as JSON numbers (Kraken v2): the number's
    text is rounded to the instrument's precision, never truncated and never
    passed through float. Accepts exponent notation (``1e-05``).
    """
    m = _NUMBER.match(text.strip())
    if m is None or not (m.group(2) or m.group(3)):
        raise ValueError(f"not a number: {text!r}")
    sign, whole, frac, exp = m.group(1), m.group(2) or "0", m.group(3) or "", int(m.group(4) or 0)
    if abs(exp) > MAX_EXPONENT:  # 10**exp alone would take minutes and gigabytes
        raise ValueError(f"exponent out of range: {text!r}")
    mantissa = int(whole + frac)
    shift = decimals - len(frac) + exp  # value * 10**decimals == mantissa * 10**shift
    if shift >= 0:
        units = mantissa * 10**shift
    else:
        units, rest = divmod(mantissa, 10**-shift)
        if 2 * rest >= 10**-shift:
            units += 1
    return int(-units if sign == "-" else units)
