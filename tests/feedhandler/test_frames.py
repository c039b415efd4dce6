"""The typed helpers read through the compiled readers and accept and refuse exactly what
they did by regular expression: same values, same ``MalformedFrame`` reasons and details.

``old_*`` below are the helpers as they were before the compiled readers (the exact
readers alone), kept here as the reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedhandler import frames
from feedhandler.frames import (
    INT64_MAX,
    MAX_EXPONENT,
    MAX_NUMBER_TEXT,
    MalformedFrame,
    iso_time,
    price_levels,
    rounded,
    row,
    seconds_time,
    sided_levels,
    units,
)
from hub.decimals import Unit, round_units
from hub.times import iso_ns_exact, seconds_ns_exact
from orderbook_core import _pytext
from tests.orderbook_core.test_text_differential import UNITS, stamps, texts


def old_units(unit: Unit, value: Any, what: str, positive: bool = False) -> int:
    if type(value) is not str or len(value) > MAX_NUMBER_TEXT:
        frames._text(value, what)
    try:
        n = unit.exact_units(value)
    except ValueError as exc:
        raise MalformedFrame("number", f"{what}: {exc}") from None
    if n > INT64_MAX or n < 0 or (positive and not n):
        frames._checked(n, f"{what} {value!r}", positive)
    return n


def old_iso_time(value: Any, what: str) -> int:
    if value is None or value == "":
        return 0
    text = frames.as_str(value, what)
    try:
        return frames._time(iso_ns_exact(text), what)
    except (ValueError, OverflowError):
        raise MalformedFrame("time", f"{what} {text[:40]!r} is not an ISO-8601 time") from None


def old_seconds_time(value: Any, what: str) -> int:
    text = frames._text(value, what)
    try:
        return frames._time(seconds_ns_exact(text), what)
    except ValueError:
        raise MalformedFrame("time", f"{what} {text!r} is not decimal seconds") from None


def old_rounded(value: Any, decimals: int, what: str, positive: bool = False) -> int:
    text = frames._text(value, what)
    m = frames._EXPONENT.search(text.strip())  # before: unstripped, so "1e99999 " hung
    if m is not None and abs(int(m.group(1))) > MAX_EXPONENT:
        raise MalformedFrame("range", f"{what} {text!r}: exponent out of range")
    try:
        n = round_units(text, decimals)
    except ValueError as exc:
        raise MalformedFrame("number", f"{what}: {exc}") from None
    return frames._checked(n, f"{what} {text!r}", positive)


def old_price_levels(
    tick: Unit, lot: Unit, bids: Any, asks: Any, size: str = "amount"
) -> tuple[tuple[int, int, int], ...]:
    return tuple(
        (
            side,
            old_units(tick, (r := row(level, 2, "level"))[0], "price", positive=True),
            old_units(lot, r[1], size),
        )
        for side, levels in ((0, frames.as_list(bids, "bids")), (1, frames.as_list(asks, "asks")))
        for level in levels
    )


def old_sided_levels(
    tick: Unit, lot: Unit, rows: Any, sides: dict[str, int], what: str, size: str
) -> tuple[tuple[int, int, int], ...]:
    levels = []
    for item in rows:
        name, price, amount = row(item, 3, what)[:3]
        side = sides.get(name) if isinstance(name, str) else None
        if side is None:
            raise MalformedFrame(
                "shape", f"side must be one of {', '.join(sides)}, got {name!r:.20}"
            )
        levels.append((side, old_units(tick, price, "price", True), old_units(lot, amount, size)))
    return tuple(levels)


def test_the_compiled_readers_decline_what_is_too_long_to_read() -> None:
    assert MAX_NUMBER_TEXT == _pytext.MAX_TEXT
    assert outcome(units, Unit("1"), "0" * 64 + "7", "size")[:2] == ("refused", "range")


def outcome(f: Callable[..., Any], *args: Any) -> Any:
    try:
        return f(*args)
    except MalformedFrame as exc:
        return "refused", exc.reason, exc.detail, exc.symbols


values = st.one_of(
    texts,
    st.sampled_from([None, 5, 1.5, True, b"1", ["1"], "1" * 65, "0." + "0" * 62 + "1"]),
)


@settings(max_examples=800, deadline=None)
@given(values, st.sampled_from(UNITS), st.booleans())
@example("0", "0.01", True)
@example("0", "0.01", False)
@example("-0", "0.01", True)
@example("92233720368547758.08", "0.01", False)
def test_units_accept_and_refuse_as_before(value: Any, unit: str, positive: bool) -> None:
    tick = Unit(unit)
    assert outcome(units, tick, value, "price", positive) == outcome(
        old_units, tick, value, "price", positive
    )


@settings(max_examples=800, deadline=None)
@given(st.one_of(stamps, values))
@example("")
@example("2262-04-11T23:47:16.854775808Z")
@example("0001-01-01T00:00:00Z")
def test_iso_times_as_before(value: Any) -> None:
    assert outcome(iso_time, value, "time") == outcome(old_iso_time, value, "time")


@settings(max_examples=800, deadline=None)
@given(values)
@example("9223372036.854775807")
@example("9223372036.854775808")
def test_seconds_times_as_before(value: Any) -> None:
    assert outcome(seconds_time, value, "t") == outcome(old_seconds_time, value, "t")


@settings(max_examples=800, deadline=None)
@given(st.one_of(values, st.sampled_from(["1e-05", "2.5E2", "1e400", "29430.25"])))
@example("29430.25000000001")
@example("1e99999 ")
@example("-1E400\t")
def test_rounded_as_before(value: Any) -> None:
    for decimals in (0, 1, 8, 18, 19):
        for positive in (False, True):
            assert outcome(rounded, value, decimals, "qty", positive) == outcome(
                old_rounded, value, decimals, "qty", positive
            )


level = st.one_of(
    st.lists(values, min_size=0, max_size=3),
    st.tuples(values, values),
    values,
)


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(st.lists(level, max_size=4), values),
    st.one_of(st.lists(level, max_size=4), values),
    st.sampled_from(UNITS),
)
@example([["60000.12", "0.5"]], [["60000.13", "0"]], "0.01")
@example([["0", "0.5"]], [], "0.01")
def test_price_levels_as_before(bids: Any, asks: Any, unit: str) -> None:
    tick, lot = Unit(unit), Unit("0.00000001")
    assert outcome(price_levels, tick, lot, bids, asks, "quantity") == outcome(
        old_price_levels, tick, lot, bids, asks, "quantity"
    )


SIDE_NAMES = {"bid": 0, "buy": 0, "offer": 1, "sell": 1}
named = st.one_of(values, st.sampled_from([*SIDE_NAMES, "ask", "Buy"]))


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.one_of(st.lists(named, min_size=0, max_size=4), named), max_size=4),
    st.sampled_from(UNITS),
)
@example([["buy", "60000.12", "0.5"], ["offer", "60000.13", "0"]], "0.01")
@example([["sell", "0", "0.5"]], "0.01")
@example([["ask", "1", "1"]], "0.01")
def test_sided_levels_as_before(rows: Any, unit: str) -> None:
    tick, lot = Unit(unit), Unit("0.00000001")
    assert outcome(sided_levels, tick, lot, rows, SIDE_NAMES, "change", "quantity") == outcome(
        old_sided_levels, tick, lot, rows, SIDE_NAMES, "change", "quantity"
    )
