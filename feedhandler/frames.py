"""Typed reading of venue frames: a field that is missing, of the wrong type or out of range
raises ``MalformedFrame`` with a short reason, never an AttributeError or OverflowError.

Venue parsers read every value through these helpers, so a frame is either
turned into events or refused as a whole with a reason that names the
field. Numbers that do not fit the book core's int64 after scaling to ticks
or lots are refused here ("range"), before they can reach a book.

Reasons (the ``reason`` label of ``hub_feed_malformed_frames_total``):

    json       not JSON, or not UTF-8
    shape      a key is missing or a value has the wrong type
    number     a value is not a decimal number, or is off the instrument's grid
    range      a number is negative, zero where it must be positive, or past int64
    time       a timestamp that cannot be read or is out of range
    symbol     a symbol (or product) the parser has no units or book for
    venue      the venue answered with an error message
    inconsistent  the frame contradicts the book (e.g. a fill larger than the order)
    internal   the parser raised something unexpected (a bug; counted by the runner)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from hub.decimals import Unit, round_units
from hub.errors import BadMessage
from hub.times import iso_ns, plain_ns, seconds_ns
from orderbook_core import UnitScale, iso_to_ns, list_levels

INT64_MAX = (1 << 63) - 1
MAX_NUMBER_TEXT = 64
"""Longest numeric text read (a longer one cannot fit int64 ticks anyway); the compiled
readers (orderbook_core.UnitScale) decline longer text too, so it is refused here."""
MAX_EXPONENT = 30
"""Largest exponent magnitude of a JSON number read (Kraken v2 sends e.g. ``1e-05``)."""
_EXPONENT = re.compile(r"[eE]([+-]?\d+)$")


class MalformedFrame(BadMessage):
    """A venue frame or REST answer the parser cannot use.

    ``reason`` is one of the labels above; ``symbols`` names the books the
    frame could have changed: None when that is unknown (the symbol itself
    was unreadable), an empty tuple when none (a trade, a ticker)."""

    def __init__(self, reason: str, detail: str, symbols: tuple[str, ...] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.symbols = symbols

    def on(self, *symbols: str) -> MalformedFrame:
        """Attribute the error to ``symbols`` (no symbols: to no book) unless already done."""
        if self.symbols is None:
            self.symbols = symbols
        return self


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def field(obj: Any, key: str) -> Any:
    """``obj[key]`` of a JSON object."""
    if not isinstance(obj, dict):
        raise MalformedFrame("shape", f"expected an object holding {key!r}, got {_kind(obj)}")
    try:
        return obj[key]
    except KeyError:
        raise MalformedFrame("shape", f"missing {key!r}") from None


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedFrame("shape", f"{what} must be an object, got {_kind(value)}")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedFrame("shape", f"{what} must be a list, got {_kind(value)}")
    return value


def as_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedFrame("shape", f"{what} must be a string, got {_kind(value)}")
    return value


def row(value: Any, n: int, what: str) -> list[Any] | tuple[Any, ...]:
    """A list (or a row the parser built) of at least ``n`` items (a price level)."""
    items = value if type(value) is list or isinstance(value, tuple) else as_list(value, what)
    if len(items) < n:
        raise MalformedFrame("shape", f"{what} has {len(items)} items, needs {n}")
    return items


def count(value: Any, what: str, digits: bool = False) -> int:
    """A non-negative int64 (ids, sequence numbers, checksums); ``digits``: also a string
    of decimal digits (venues that send numbers as text)."""
    if digits and isinstance(value, str) and 0 < len(value) <= 20 and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedFrame("shape", f"{what} must be an integer, got {_kind(value)}")
    if not 0 <= value <= INT64_MAX:
        raise MalformedFrame("range", f"{what} {value} is outside 0..2**63-1")
    return value


def _checked(units: int, what: str, positive: bool) -> int:
    if units > INT64_MAX or units < 0 or (positive and units == 0):
        bound = "positive" if positive else "non-negative"
        raise MalformedFrame("range", f"{what} is {units} units: must be {bound} and fit int64")
    return units


def _text(value: Any, what: str) -> str:
    text = as_str(value, what)
    if len(text) > MAX_NUMBER_TEXT:
        raise MalformedFrame("range", f"{what} has {len(text)} characters: {text[:24]}...")
    return text


def units(unit: Unit, value: Any, what: str, positive: bool = False) -> int:
    """A decimal string as whole ``unit``s, in int64 (positive for prices). The hot path of
    every parser: a plain string is read by the compiled reader (``unit.plain``); anything
    it declines takes the exact path, which decides the refusal."""
    n = unit.plain(value)
    if n is not None and (n or not positive):
        return n
    if type(value) is not str or len(value) > MAX_NUMBER_TEXT:
        _text(value, what)  # raises the right MalformedFrame
    try:
        n = unit.exact_units(value)
    except ValueError as exc:
        raise MalformedFrame("number", f"{what}: {exc}") from None
    if n > INT64_MAX or n < 0 or (positive and not n):
        _checked(n, f"{what} {value!r}", positive)
    return n


@functools.lru_cache(maxsize=64)
def _plain_scale(decimals: int) -> Callable[[object], int | None]:
    return UnitScale(1, decimals).units


def rounded(value: Any, decimals: int, what: str, positive: bool = False) -> int:
    """A JSON number's exact text (Kraken v2) rounded to ``decimals``, in int64. Plain text
    with no more decimals than that needs no rounding: the compiled reader takes it."""
    if decimals >= 0:
        n = _plain_scale(decimals)(value)
        if n is not None and (n or not positive):
            return n
    text = _text(value, what)
    m = _EXPONENT.search(text.strip())  # the text round_units reads: "1e99999 " too
    if m is not None and abs(int(m.group(1))) > MAX_EXPONENT:
        raise MalformedFrame("range", f"{what} {text!r}: exponent out of range")
    try:
        n = round_units(text, decimals)
    except ValueError as exc:
        raise MalformedFrame("number", f"{what}: {exc}") from None
    return _checked(n, f"{what} {text!r}", positive)


def _time(ns: int, what: str) -> int:
    if not 0 <= ns <= INT64_MAX:
        raise MalformedFrame("time", f"{what} is out of range")
    return ns


def iso_time(value: Any, what: str) -> int:
    """An ISO-8601 UTC stamp (or null/absent: 0) as int64 ns."""
    ns = iso_to_ns(value)  # a plain stamp, read compiled; None: the exact path answers
    if ns is not None:
        return ns
    if value is None or value == "":
        return 0
    text = as_str(value, what)
    try:
        return _time(iso_ns(text), what)
    except (ValueError, OverflowError):
        raise MalformedFrame("time", f"{what} {text[:40]!r} is not an ISO-8601 time") from None


def seconds_time(value: Any, what: str) -> int:
    """Decimal seconds as text (Kraken v1) as int64 ns."""
    ns = plain_ns(value)
    if ns is not None:
        return ns
    text = _text(value, what)
    try:
        return _time(seconds_ns(text), what)
    except ValueError:
        raise MalformedFrame("time", f"{what} {text!r} is not decimal seconds") from None


def millis_time(value: Any, what: str) -> int:
    """Integer milliseconds since the epoch (Binance) as int64 ns."""
    return _time(count(value, what) * 1_000_000, what)


def price_levels(
    tick: Unit, lot: Unit, bids: Any, asks: Any, size: str = "amount"
) -> tuple[tuple[int, int, int], ...]:
    """``[price, size, ...]`` rows of both sides as (side, price units, size units): the
    level lists most venues send in snapshots and updates (``size`` names the field).

    Rows of plain strings are read by the compiled reader (``list_levels``); if any row is
    not, every row is read (and refused) field by field through ``row`` and ``units``."""
    plain = list_levels(bids, 0, tick.scale, lot.scale)
    if plain is not None:
        plain_asks = list_levels(asks, 1, tick.scale, lot.scale)
        if plain_asks is not None:
            return tuple(plain[0] + plain_asks[0])
    return tuple(
        (
            side,
            units(tick, (r := row(level, 2, "level"))[0], "price", positive=True),
            units(lot, r[1], size),
        )
        for side, levels in ((0, as_list(bids, "bids")), (1, as_list(asks, "asks")))
        for level in levels
    )


def sided_levels(
    tick: Unit, lot: Unit, rows: list[Any], sides: dict[str, int], what: str, size: str
) -> tuple[tuple[int, int, int], ...]:
    """``[side name, price, size, ...]`` rows of one list as (side, price units, size
    units), each name looked up in ``sides`` (Coinbase's and Gemini's changes; ``what``
    names a row, ``size`` its size field). Rows of plain strings are read by the compiled
    reader; if any row is not, every row is read (and refused) field by field."""
    plain = list_levels(rows, 0, tick.scale, lot.scale, sides)
    if plain is not None:
        return tuple(plain[0])
    levels = []
    for item in rows:
        name, price, amount = row(item, 3, what)[:3]
        side = sides.get(name) if isinstance(name, str) else None
        if side is None:
            raise MalformedFrame(
                "shape", f"side must be one of {', '.join(sides)}, got {name!r:.20}"
            )
        levels.append((side, units(tick, price, "price", positive=True), units(lot, amount, size)))
    return tuple(levels)
