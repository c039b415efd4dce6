"""Id-keyed books (BitMEX, Bybit orderBookL2): a snapshot that repeats an id or a level is
refused with the first repeat named, and the book it would replace is kept."""

from __future__ import annotations

from feedhandler.venues.idbook import IdBook


def test_a_snapshot_loads_its_levels_in_row_order() -> None:
    ids = IdBook()
    assert ids.load([("7", 1, 105, 3), ("5", 0, 100, 2)]) == ((1, 105, 3), (0, 100, 2))
    assert ids.ids == {"7": (1, 105), "5": (0, 100)}


def test_a_snapshot_repeating_an_id_or_a_level_is_refused_and_the_book_kept() -> None:
    ids = IdBook()
    ids.load([("1", 0, 100, 2)])
    twice = [("5", 0, 99, 1), ("6", 1, 101, 1), ("5", 1, 102, 1), ("7", 0, 99, 1)]
    assert ids.load(twice) == "snapshot lists id 5 twice"
    level = [("5", 0, 99, 1), ("6", 1, 101, 1), ("7", 0, 99, 1), ("6", 1, 103, 1)]
    assert ids.load(level) == "snapshot lists price 99 of side 0 under two ids"
    assert ids.ids == {"1": (0, 100)}
