"""The compiled text readers (orderbook_core._text) and their pure-Python twin give the same
answers, None included, and every answer that is not None is the hub's exact reader's
(hub.decimals ``Unit.exact_units``, hub.times ``iso_ns_exact`` / ``seconds_ns_exact``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.decimals import Unit
from hub.times import iso_ns, iso_ns_exact, seconds_ns, seconds_ns_exact
from orderbook_core import _pytext, _text

UNITS = ["1", "0.1", "0.01", "0.00000001", "0.5", "0.25", "5", "25", "1" + "0" * 18, "1" + "0" * 19]
UNITS += ["0." + "0" * 17 + "1", "0." + "0" * 18 + "1", "0." + "0" * 25 + "5"]
"""Tick and lot sizes: decimal, non-decimal, at and past int64 and 10**-18."""

digits = st.text(alphabet="0123456789", max_size=22)
plain = st.builds(
    lambda sign, whole, point, frac, tail: f"{sign}{whole}{point}{frac}{tail}",
    st.sampled_from(["", "", "", "+", "-", " "]),
    digits,
    st.sampled_from([".", ".", ""]),
    digits,
    st.sampled_from(["", "", "", "", "0" * 12, " ", "\n", "e5", ".", "x", "\u0663"]),
)
"""Plain decimals with now and then a sign, a space, an exponent or junk around them."""
texts = st.one_of(plain, st.text(alphabet="0123456789.+-eE \u0660\u0663_", max_size=24))


def answer(f: Callable[[], Any]) -> Any:
    try:
        return f()
    except Exception as exc:  # the same error, down to its message
        return type(exc).__name__, str(exc)


@settings(max_examples=1500, deadline=None)
@given(texts, st.sampled_from(UNITS))
@example("9223372036854775807", "1")
@example("9223372036854775808", "1")
@example("92233720368547758.07", "0.01")
@example("92233720368547758.08", "0.01")
@example("0.000000000000000000001", "0." + "0" * 20 + "1")
@example("1.000000000000000000000", "1")
@example("-0", "0.01")
@example("1.", "1")
@example(".5", "0.5")
@example(".", "1")
@example("+", "1")
@example("0" * 63 + "1", "1")
@example("0" * 64 + "1", "1")
def test_unit_scales_agree_and_never_contradict_the_exact_reader(text: str, unit: str) -> None:
    tick = Unit(unit)
    compiled = _text.UnitScale(tick._mant, tick._exp).units(text)
    twin = _pytext.UnitScale(tick._mant, tick._exp).units(text)
    assert compiled == twin
    exact = answer(lambda: tick.exact_units(text))
    if compiled is not None:
        assert compiled == exact
        assert 0 <= compiled <= 2**63 - 1
    assert answer(lambda: tick.to_units(text)) == exact


INT64 = 2**63
ints = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(-INT64, INT64 - 1),
    st.integers(-(INT64 * 10**3), INT64 * 10**3),
    st.sampled_from([0, 1, -1, INT64 - 1, -INT64, INT64, -INT64 - 1, 10**30]),
)
"""Units near zero, anywhere in int64, a little past it, and its edges."""


@settings(max_examples=1500, deadline=None)
@given(ints, st.sampled_from(UNITS))
@example(2**63 - 1, "1")
@example(-(2**63), "1")
@example(-(2**63), "0.01")
@example(92233720368547758, "0.00000001")
@example(-1, "0." + "0" * 17 + "1")
def test_unit_formatters_agree_and_never_contradict_the_exact_formatter(
    units: int, unit: str
) -> None:
    tick = Unit(unit)
    compiled = _text.UnitScale(tick._mant, tick._exp).text(units)
    twin = _pytext.UnitScale(tick._mant, tick._exp).text(units)
    assert compiled == twin
    exact = tick.exact_str(units)
    if compiled is not None:
        assert compiled == exact
    assert tick.to_str(units) == exact
    assert tick.to_units(exact) == units  # the string reads back as the same units


@pytest.mark.parametrize("scale", [_text.UnitScale, _pytext.UnitScale])
def test_unit_scales_format_what_reports_and_books_send(scale: Any) -> None:
    cents, satoshi, half = scale(1, 2), scale(1, 8), scale(5, 1)
    assert cents.text(6000012) == "60000.12"
    assert cents.text(0) == "0.00" and scale(1, 0).text(0) == "0"
    assert cents.text(-5) == "-0.05" and cents.text(-500) == "-5.00"
    assert satoshi.text(1) == "0.00000001"
    assert half.text(203) == "101.5"
    assert scale(25, 0).text(4) == "100"
    assert cents.text(2**63 - 1) == "92233720368547758.07"
    assert cents.text(-(2**63)) == "-92233720368547758.08"
    assert half.text(2**63 - 1) is None  # 5 * units is past int64: the exact formatter
    for declined in (2**63, -(2**63) - 1, 1.0, "1", None, True):
        assert cents.text(declined) is None, declined


@pytest.mark.parametrize("scale", [_text.UnitScale, _pytext.UnitScale])
def test_unit_scales_read_what_venues_send(scale: Any) -> None:
    cents, satoshi = scale(1, 2), scale(1, 8)
    assert cents.units("60000.12") == 6000012
    assert cents.units("60000.1") == 6000010
    assert cents.units("60000.1200000000") == 6000012  # trailing zeros are on the grid
    assert satoshi.units("0.00000001") == 1
    assert scale(5, 1).units("101.5") == 203  # unit 0.5
    for declined in ("1.001", "-1", " 1", "1e5", "", ".", "abc", None, 5, b"1"):
        assert cents.units(declined) is None, declined
    assert cents.units("92233720368547758.07") == 2**63 - 1
    assert cents.units("92233720368547758.08") is None  # past int64: the exact path refuses
    assert not scale(1, 19).usable and scale(1, 19).units("1") is None
    assert scale(1, 0).units("0" * 63 + "7") == 7
    assert scale(1, 0).units("0" * 64 + "7") is None  # longer than any venue number
    with pytest.raises(ValueError):
        scale(0, 2)


stamps = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, z: (
        f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{z}"
    ),
    st.integers(min_value=1, max_value=9999),
    st.integers(min_value=0, max_value=13),
    st.integers(min_value=0, max_value=32),
    st.sampled_from(["T", "T", " ", "t", "_"]),
    st.integers(min_value=0, max_value=25),
    st.integers(min_value=0, max_value=61),
    st.integers(min_value=0, max_value=61),
    st.one_of(st.just(""), st.builds(lambda f: "." + f, digits), st.sampled_from([".", ".5x"])),
    st.sampled_from(["Z", "Z", "", "ZZ", "+00:00", "z", " "]),
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(stamps, st.text(alphabet="0123456789-T:. Z", max_size=32)))
@example("2023-07-30T15:29:58.343415Z")
@example("2026-08-09T21:05:48.228568804Z")
@example("2026-08-09T21:05:48.2285688049999Z")
@example("2021-04-17 16:43:37")
@example("2024-02-29T00:00:00Z")
@example("2023-02-29T00:00:00Z")
@example("1970-01-01T00:00:00Z")
@example("2261-12-31T23:59:59.999999999Z")
@example("2262-04-11T23:47:16.854775807Z")
@example("2023-07-30T15:29:58.Z")
def test_iso_readers_agree_and_never_contradict_the_exact_reader(stamp: str) -> None:
    compiled, twin = _text.iso_to_ns(stamp), _pytext.iso_to_ns(stamp)
    assert compiled == twin
    exact = answer(lambda: iso_ns_exact(stamp))
    if compiled is not None:
        assert compiled == exact
    assert answer(lambda: iso_ns(stamp)) == exact


def test_iso_readers_decline_what_is_not_a_plain_stamp() -> None:
    for reader in (_text.iso_to_ns, _pytext.iso_to_ns):
        assert reader("2023-07-30T15:29:58.343415Z") == 1690730998343415000
        assert reader("2021-04-17 16:43:37") == 1618677817000000000
        assert reader("2026-08-09T21:05:48.2285688049Z") == 1786309548228568804  # cut at 1 ns
        for declined in (
            None,
            "",
            "2023-07-30",
            "2023-07-30T15:29:58+01:00",
            "1969-12-31T23:59:59Z",
        ):
            assert reader(declined) is None, declined


@settings(max_examples=800, deadline=None)
@given(texts)
@example("1693415331.627599")
@example("1.0000000019")
@example("1.0000000010")
def test_decimal_seconds_are_the_exact_readers(text: str) -> None:
    assert answer(lambda: seconds_ns(text)) == answer(lambda: seconds_ns_exact(text))


cells = st.one_of(texts, st.sampled_from(["60000.12", "0.5", "0", "1693415331.627599", "bid"]))
cells = st.one_of(cells, st.sampled_from([None, 5, ["1"], "ask", "offer", "buy"]))
rows = st.one_of(
    st.lists(st.one_of(st.lists(cells, max_size=4), st.tuples(cells, cells, cells)), max_size=6),
    cells,
)
SIDES = {"bid": 0, "buy": 0, "ask": 1, "offer": 1, "sell": 1}


@settings(max_examples=800, deadline=None)
@given(rows, st.sampled_from(UNITS), st.booleans(), st.booleans())
@example([["60000.12", "0.5", "1693415331.627599"]], "0.01", False, True)
@example([["bid", "60000.12", "0.5"], ("offer", "60000.13", "0")], "0.01", True, False)
def test_level_readers_agree(rows: Any, unit: str, named: bool, timed: bool) -> None:
    tick, lot = Unit(unit), Unit("0.00000001")
    sides = SIDES if named else None
    compiled = _text.list_levels(
        rows,
        1,
        _text.UnitScale(tick._mant, tick._exp),
        _text.UnitScale(lot._mant, lot._exp),
        sides,
        timed,
    )
    twin = _pytext.list_levels(
        rows,
        1,
        _pytext.UnitScale(tick._mant, tick._exp),
        _pytext.UnitScale(lot._mant, lot._exp),
        sides,
        timed,
    )
    assert compiled == twin


objects = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"side": cells, "price_level": cells, "new_quantity": cells, "event_time": cells}
        ),
        st.fixed_dictionaries(
            {"side": cells, "price_level": cells, "new_quantity": cells, "event_time": stamps}
        ),
        st.dictionaries(st.sampled_from(["side", "price_level"]), cells),
        cells,
    ),
    max_size=5,
)


@settings(max_examples=800, deadline=None)
@given(st.one_of(objects, cells), st.sampled_from(UNITS))
@example(
    [
        {
            "side": "bid",
            "price_level": "60000.12",
            "new_quantity": "0.5",
            "event_time": "2023-07-30T15:29:58.343415Z",
        }
    ],
    "0.01",
)
def test_object_level_readers_agree(rows: Any, unit: str) -> None:
    tick, lot = Unit(unit), Unit("0.00000001")
    keys = ("side", "price_level", "new_quantity", "event_time")
    compiled = _text.dict_levels(
        rows,
        SIDES,
        *keys,
        _text.UnitScale(tick._mant, tick._exp),
        _text.UnitScale(lot._mant, lot._exp),
    )
    twin = _pytext.dict_levels(
        rows,
        SIDES,
        *keys,
        _pytext.UnitScale(tick._mant, tick._exp),
        _pytext.UnitScale(lot._mant, lot._exp),
    )
    assert compiled == twin


_trade_value = st.one_of(
    st.integers(-2, 3),
    st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, True, False, 1.0, "1", None]),
)
_trade_row = st.one_of(
    st.lists(_trade_value, min_size=4, max_size=5).map(
        lambda r: [r[0], "Buy", *r[2:]] if r[1] == 1 else [r[0], "Sell", *r[2:]]
    ),
    st.lists(st.one_of(_trade_value, st.sampled_from(["Buy", "sell", "x"])), max_size=5),
    st.sampled_from([(1, "Buy", 1, 1), {"a": 1}, "row"]),
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.lists(_trade_row, max_size=4), st.sampled_from([None, (), "rows"])))
def test_int_trades_agree_and_read_only_plain_rows(rows: Any) -> None:
    """Phemex's trade rows: the compiled reader and the twin agree, None included, and
    every row read is four ints in range with the side named."""
    sides = {"Buy": 0, "Sell": 1}
    compiled = _text.int_trades(rows, sides)
    assert compiled == _pytext.int_trades(rows, sides)
    if compiled is not None:
        assert [list(r) for r in compiled] == [[r[0], sides[r[1]], r[2], r[3]] for r in rows]
        for ts, side, price, qty in compiled:
            assert all(type(v) is int for v in (ts, side, price, qty))
            assert 0 <= ts < 2**63 and 0 < price < 2**63 and 0 < qty < 2**63
