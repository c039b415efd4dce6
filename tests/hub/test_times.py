from __future__ import annotations

import pytest

from hub.times import iso_ns, seconds_ns


def test_decimal_seconds_are_exact_where_float_is_not() -> None:
    assert int(float("1693415331.627599") * 1e9) != 1693415331627599000  # why this module exists
    assert seconds_ns("1693415331.627599") == 1693415331627599000
    assert seconds_ns("34200.004241176") == 34200004241176
    assert seconds_ns("1.0000000019") == 1000000001
    assert seconds_ns("7") == 7_000_000_000


@pytest.mark.parametrize(
    ("stamp", "ns"),
    [
        ("2023-07-30T15:29:58.343415Z", 1690730998343415000),
        ("2026-08-09T21:05:48.228568804Z", 1786309548228568804),
        ("2021-04-17 16:43:37", 1618677817000000000),
        (None, 0),
        ("", 0),
    ],
)
def test_iso_stamps(stamp: str | None, ns: int) -> None:
    assert iso_ns(stamp) == ns
