"""Types of the compiled text readers (orderbook_core._text)."""

from collections.abc import Iterable
from typing import Any

class UnitScale:
    mant: int
    exp: int
    usable: bool
    def __init__(self, mant: int = 1, exp: int = 0) -> None: ...
    def units(self, text: object) -> int | None: ...
    def text(self, units: object) -> str | None: ...

def iso_to_ns(text: object) -> int | None: ...
def json_units(text: object, scale: UnitScale, rounding: bool = False) -> int | None: ...

Level = tuple[int, int, int]

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
) -> tuple[list[Level], int] | None: ...
def int_trades(rows: object, sides: dict[str, int]) -> list[tuple[int, int, int, int]] | None: ...
def dict_levels(
    rows: object,
    sides: dict[str, int],
    side_key: str,
    price_key: str,
    size_key: str,
    time_key: str,
    tick: UnitScale,
    lot: UnitScale,
) -> tuple[tuple[Level, ...], int] | None: ...
def bad_level(levels: Iterable[Any]) -> int: ...
def book_diff(
    before: tuple[list[tuple[int, int]], list[tuple[int, int]]],
    after: tuple[list[tuple[int, int]], list[tuple[int, int]]],
) -> tuple[Level, ...]: ...
