"""JSON numbers' text (Huobi, Crypto.com: exponents, Huobi's float sums rounded to the lot)
read by the compiled level reader and its pure-Python twin: the same answers, None
included, and every answer that is not None is the exact reader's
(feedhandler.venues.exact ``number_units``, hub.decimals ``round_units``)."""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedhandler.frames import MalformedFrame, count
from feedhandler.venues.exact import Number, number_levels, number_units
from hub.decimals import Unit, round_units
from orderbook_core import _book, _pytext, _text
from orderbook_core._scan_numbers import deribit_frame

UNITS = ["1", "0.01", "0.00000001", "0.5", "25", "1" + "0" * 18, "0." + "0" * 17 + "1"]
digits = st.text(alphabet="0123456789", max_size=21)
numbers = st.builds(
    lambda whole, point, frac, exp: f"{whole}{point}{frac}{exp}",
    digits,
    st.sampled_from([".", ".", ""]),
    digits,
    st.sampled_from(["", "", "E-7", "e-05", "E+2", "e3", "e", "E-1234", "e-19", "e+", "e1e1"]),
)
"""JSON number texts, exponents included, with now and then one past what is read."""
texts = st.one_of(numbers, st.text(alphabet="0123456789.+-eE ", max_size=24))


def both(rows: Any, unit: str, kind: type[str], rounding: bool, positive: bool) -> Any:
    tick, lot = Unit(unit), Unit("0.00000001") if rounding else Unit(unit)
    answers = []
    for module in (_text, _pytext):
        scales = module.UnitScale(tick._mant, tick._exp), module.UnitScale(lot._mant, lot._exp)
        answers.append(module.list_levels(rows, 1, *scales, None, False, kind, rounding, positive))
    assert answers[0] == answers[1]
    return answers[0]


def exact(text: str, decimals: int, rounding: bool) -> int | None:
    try:
        if rounding:
            return round_units(text, decimals)
        return number_units(decimals, Number(text), "n")
    except (MalformedFrame, ValueError):
        return None


@settings(max_examples=1500, deadline=None)
@given(texts, texts, st.sampled_from(UNITS), st.booleans(), st.booleans())
@example("9.121E-7", "92730.24", "0.0000000001", False, True)
@example("1.58E-4", "3307.9982700421942", "0.000001", True, True)
@example("49986.85", "3.45E-4", "0.01", True, True)
@example("5", "0.000000005", "1", True, True)
@example("5", "0.000000004", "1", True, True)
@example("5", "0.00000000", "1", True, True)
@example("1E+2", ".5", "1", True, False)
@example("92233720368547758.07", "9223372036854775807", "0.01", False, False)
def test_number_rows_agree_and_are_the_exact_readers(
    price: str, size: str, unit: str, rounding: bool, positive: bool
) -> None:
    got = both([[Number(price), Number(size), Number("3")]], unit, Number, rounding, positive)
    if got is None:
        return
    ((side, p, s),), ts = got
    assert (side, ts) == (1, 0)
    tick = Unit(unit)
    if tick._mant == 1:  # a power of ten: the venues' number_units grid
        assert p == exact(price, tick._exp, False)
    lot_decimals = 8 if rounding else tick._exp
    if rounding or tick._mant == 1:
        assert s == exact(size, lot_decimals, rounding)
    assert p > 0 and s >= 0 and (s > 0 or not positive)


def test_numbers_of_another_kind_are_declined() -> None:
    """A string where numbers are read is the exact path's to refuse, and numbers where
    strings are read are too (a str subclass is not plain text)."""
    assert both([["1.5", "2"]], "0.1", Number, False, False) is None
    assert both([[Number("1.5"), Number("2")]], "0.1", str, False, False) is None
    assert both([[Number("1.5"), Number("2")]], "0.1", Number, False, False) == (
        [(1, 15, 20)],
        0,
    )
    plain = both([["1E-1", "2"]], "0.1", str, False, False)
    assert plain is None  # exponents only in JSON numbers


def test_number_levels_reads_both_sides_or_declines() -> None:
    tick, lot = Unit("0.01"), Unit("0.0001")
    bids = [[Number("1.5E+1"), Number("0.00015")]]
    asks = [[Number("15.01"), Number("2")]]
    assert number_levels(bids, asks, tick.scale, lot.scale, rounding=True) == [
        (0, 1500, 2),
        (1, 1501, 20000),
    ]
    assert number_levels(bids, asks, tick.scale, lot.scale) is None  # 0.00015: off the lot
    assert number_levels(bids, [[Number("15.01"), Number("0")]], tick.scale, lot.scale) is None


@settings(max_examples=1500, deadline=None)
@given(texts, st.sampled_from(UNITS), st.booleans())
@example("7.899e-05", "0.00000001", False)
@example("1E+2", "1", False)
@example("3307.9982700421942", "0.00000001", True)
def test_json_units_agree_and_are_the_exact_readers(text: str, unit: str, rounding: bool) -> None:
    scale = Unit(unit)
    compiled = _text.json_units(Number(text), _text.UnitScale(scale._mant, scale._exp), rounding)
    twin = _pytext.json_units(Number(text), _pytext.UnitScale(scale._mant, scale._exp), rounding)
    assert compiled == twin
    if compiled is not None and scale._mant == 1:
        assert compiled == exact(text, scale._exp, rounding)


@given(st.one_of(texts, st.integers(0, 10**20).map(str)))
@example("123456789012345678")
@example("1234567890123456789")
@example("\u0663")
def test_integers_read_fast_are_the_exact_readers(text: str) -> None:
    """``exact.integer``'s plain-digit shortcut answers as its exact path does."""
    from feedhandler.venues import exact as ex

    try:
        fast: Any = ex.integer(Number(text), "n")
    except MalformedFrame as exc:
        fast = exc.reason
    try:
        mant, decimals = ex.decimal_parts(Number(text), "n")
        whole, rest = divmod(mant, 10**decimals)
        slow: Any = "number" if rest else count(whole, "n")
    except MalformedFrame as exc:
        slow = exc.reason
    assert fast == slow


def test_the_compiled_readers_levels_are_off_the_collectors_list() -> None:
    """A level is a tuple of ints (in no cycle): the compiled readers hand it over
    untracked, so a snapshot's thousands of levels cost the collector nothing."""
    scales = (_text.UnitScale(1, 2), _text.UnitScale(1, 3))  # the compiled core's, on either
    read = _text.list_levels([["1.25", "2"], ["1.5", "0"]], 1, *scales)
    assert read is not None and read[0] == [(1, 125, 2000), (1, 150, 0)]
    assert not any(gc.is_tracked(x) for x in read[0])
    book = (
        '{"method":"subscription","params":{"channel":"book.X.raw","data":{"type":"snapshot",'
        '"timestamp":1,"change_id":2,"bids":[["new",1.5,2]],"asks":[]}}}'
    )
    scan = deribit_frame(book, {"X": (2, 0)})
    assert scan is not None and scan[6] == ((0, 150, 2),)
    assert not gc.is_tracked(scan[6][0])
    l2 = _book.L2Book()  # a book's levels, and the changes between two books, alike
    l2.apply(((0, 100, 5), (0, 99, 1), (1, 101, 3)))
    after = l2.snapshot()
    assert after == ([(100, 5), (99, 1)], [(101, 3)])
    diff = _text.book_diff(([(100, 4), (98, 2)], []), after)
    assert diff == ((0, 98, 0), (0, 100, 5), (0, 99, 1), (1, 101, 3))
    assert not any(gc.is_tracked(x) for x in (*after[0], *after[1], *diff))
