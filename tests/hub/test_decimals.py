from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.decimals import Unit, parse_decimal, round_units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123.45", (12345, 2)),
        ("0.00000001", (1, 8)),
        ("-1.5", (-15, 1)),
        ("7", (7, 0)),
        (".5", (5, 1)),
        ("10.", (10, 0)),
        ("3.10", (310, 2)),
    ],
)
def test_parse_decimal(text: str, expected: tuple[int, int]) -> None:
    assert parse_decimal(text) == expected


@pytest.mark.parametrize("text", ["", "1e5", "1.2.3", "abc", "0x10", "1,5", "NaN"])
def test_parse_decimal_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a decimal"):
        parse_decimal(text)


def test_units_exact_both_ways() -> None:
    tick = Unit("0.01")
    assert tick.to_units("60000.12") == 6000012
    assert tick.to_units("60000.1") == 6000010
    assert tick.to_str(6000012) == "60000.12"
    assert tick.to_str(5) == "0.05"
    half = Unit("0.5")
    assert half.to_units("101.5") == 203
    assert half.to_str(203) == "101.5"
    assert Unit("25").to_str(3) == "75"


def test_units_refuse_off_grid() -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        Unit("0.01").to_units("1.001")
    with pytest.raises(ValueError, match="positive"):
        Unit("0")


@given(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from(["1", "0.1", "0.01", "0.00001", "0.5", "0.25", "5"]),
)
def test_round_trip(units: int, unit_text: str) -> None:
    unit = Unit(unit_text)
    assert unit.to_units(unit.to_str(units)) == units


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("29430.2", 1, 294302),
        ("0.18967538", 8, 18967538),
        ("4.0", 8, 400000000),
        ("0", 1, 0),
        ("0.123456785", 8, 12345679),
        ("0.123456784", 8, 12345678),
        ("1e-05", 8, 1000),
        ("2.5E2", 1, 2500),
        ("-1.25", 1, -13),
        ("29430.25000000001", 1, 294303),
    ],
)
def test_round_units_exact_half_away_from_zero(text: str, decimals: int, units: int) -> None:
    assert round_units(text, decimals) == units


def test_round_units_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a number"):
        round_units("abc", 2)
