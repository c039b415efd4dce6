"""JSON numbers read exactly, for venues that send prices and sizes as numbers (Bybit, BitMEX).

``exact_json`` parses a frame with every number kept as its text (``Number``, a
``str``), so ``0.00010699`` and ``7.899e-05`` reach the parser as written, never
as floats; ``string`` still tells a JSON string from a number where the venue
sends strings. ``number_units`` turns a number's text, exponent included, into
whole units of ``10**-decimals`` exactly, and refuses one off that grid.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from feedhandler.frames import INT64_MAX, MAX_EXPONENT, MAX_NUMBER_TEXT, MalformedFrame, count
from hub.decimals import parse_decimal
from orderbook_core import UnitScale, json_units, list_levels


class Number(str):
    """A JSON number's exact text (``"2.63"`` for ``2.63``)."""

    __slots__ = ()


_DECODER = json.JSONDecoder(parse_float=Number, parse_int=Number, parse_constant=Number)
"""One decoder for every frame (``json.loads`` with hooks builds a decoder per call)."""


def exact_json(text: str) -> Any:
    """The frame with every JSON number as its exact text (``Number``)."""
    try:
        if type(text) is str:
            return _DECODER.decode(text)
        return json.loads(text, parse_float=Number, parse_int=Number, parse_constant=Number)
    except (ValueError, RecursionError):
        raise MalformedFrame("json", "not JSON") from None


def string(value: Any, what: str) -> str:
    """A JSON string (not a number's text)."""
    if type(value) is not str:
        kind = "number" if isinstance(value, Number) else type(value).__name__
        raise MalformedFrame("shape", f"{what} must be a string, got {kind}")
    return value


def number_levels(
    bids: Any, asks: Any, tick: UnitScale, lot: UnitScale, rounding: bool = False
) -> list[tuple[int, int, int]] | None:
    """``[price, size, ...]`` rows of JSON numbers (``Number``) on both sides as (side, price
    units, size units), read by the compiled reader (``rounding``: sizes rounded half up to
    the lot's decimals), every price and size positive; None if any row is not plain (the
    caller then reads every row through ``number_units``, which decides the refusal)."""
    plain = list_levels(bids, 0, tick, lot, None, False, Number, rounding, True)
    if plain is None:
        return None
    plain_asks = list_levels(asks, 1, tick, lot, None, False, Number, rounding, True)
    return None if plain_asks is None else plain[0] + plain_asks[0]


def decimal_parts(value: Any, what: str) -> tuple[int, int]:
    """(mantissa, decimals) of a number's text (a JSON number or a string), exponent
    included: ``7.899e-05`` is (7899, 8), ``1E+2`` is (100, 0)."""
    if not isinstance(value, str):
        raise MalformedFrame("shape", f"{what} must be a number, got {type(value).__name__}")
    if len(value) > MAX_NUMBER_TEXT:
        raise MalformedFrame("range", f"{what} has {len(value)} characters: {value[:24]}...")
    base, _, exponent = value.lower().partition("e")
    try:
        mant, decimals = parse_decimal(base)
        shift = int(exponent) if exponent else 0
    except ValueError:
        raise MalformedFrame("number", f"{what} {value[:30]!r} is not a number") from None
    if abs(shift) > MAX_EXPONENT:
        raise MalformedFrame("range", f"{what} {value[:30]!r}: exponent out of range")
    decimals -= shift
    return (mant, decimals) if decimals >= 0 else (mant * 10**-decimals, 0)


def decimals_of(value: Any, what: str) -> int:
    """The decimals a number needs (``1e-08``: 8, ``0.0005``: 4, ``100``: 0)."""
    mant, decimals = decimal_parts(value, what)
    while decimals and mant % 10 == 0:
        mant //= 10
        decimals -= 1
    return decimals


def number(value: Any, what: str) -> Number:
    """A JSON number (not a string holding one)."""
    if not isinstance(value, Number):
        kind = "string" if isinstance(value, str) else type(value).__name__
        raise MalformedFrame("shape", f"{what} must be a number, got {kind}")
    return value


@functools.lru_cache(maxsize=64)
def _scale(decimals: int) -> UnitScale:
    return UnitScale(1, decimals)


def number_units(decimals: int, value: Any, what: str, positive: bool = False) -> int:
    """A JSON number's text as whole units of ``10**-decimals``, exactly, in int64. The
    compiled reader takes plain text; anything it declines is read (and refused) here."""
    if type(value) is Number and decimals >= 0:
        n = json_units(value, _scale(decimals))
        if n is not None and (n or not positive):
            return n
    mant, exp = decimal_parts(number(value, what), what)
    units: int
    if exp > decimals:
        units, rest = divmod(mant, 10 ** (exp - decimals))
        if rest:
            why = f"{what} {value[:30]!r} has more than {decimals} decimals"
            raise MalformedFrame("number", why)
    else:
        units = mant * 10 ** (decimals - exp)
    if units > INT64_MAX or units < 0 or (positive and units == 0):
        bound = "positive" if positive else "non-negative"
        raise MalformedFrame("range", f"{what} {value[:30]!r} must be {bound} and fit int64")
    return units


def integer(value: Any, what: str) -> int:
    """A JSON number that is a whole non-negative int64 (ids, sequence numbers, epoch
    milliseconds); ``5`` and ``5.0`` are 5, ``5.5`` and a string holding digits are refused."""
    if type(value) is Number and len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)  # plain digits: below 10**18, inside int64
    mant, decimals = decimal_parts(number(value, what), what)
    whole, rest = divmod(mant, 10**decimals)
    if rest:
        raise MalformedFrame("number", f"{what} {value[:30]!r} is not a whole number")
    return count(whole, what)


def unit_decimals(value: Any, what: str, most: int = 18) -> int:
    """The decimals of a positive JSON number that sets a unit (a tick or lot size: ``0.5``
    is 1, ``1e-08`` is 8), refused past ``most`` (10**18 units of one already fill int64)."""
    if decimal_parts(number(value, what), what)[0] <= 0:
        raise MalformedFrame("range", f"{what} {value[:30]!r} must be positive")
    decimals = decimals_of(value, what)
    if decimals > most:
        raise MalformedFrame("range", f"{what} has more than {most} decimals")
    return decimals
