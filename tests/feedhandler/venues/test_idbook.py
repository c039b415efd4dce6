"""Id-keyed books (BitMEX, Bybit orderBookL2): a snapshot that repeats an id or a level is
refused with the first repeat named, and the book it would replace is kept."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from feedhandler.venues.idbook import IdBook


def test_a_snapshot_loads_its_levels_in_row_order() -> None:
    ids = IdBook()
    assert ids.load([("7", 1, 105, 3), ("5", 0, 100, 2)]) == ((1, 105, 3), (0, 100, 2))
    assert ids.levels() == {"7": (1, 105), "5": (0, 100)}


def test_a_snapshot_repeating_an_id_or_a_level_is_refused_and_the_book_kept() -> None:
    ids = IdBook()
    ids.load([("1", 0, 100, 2)])
    twice = [("5", 0, 99, 1), ("6", 1, 101, 1), ("5", 1, 102, 1), ("7", 0, 99, 1)]
    assert ids.load(twice) == "snapshot lists id 5 twice"
    level = [("5", 0, 99, 1), ("6", 1, 101, 1), ("7", 0, 99, 1), ("6", 1, 103, 1)]
    assert ids.load(level) == "snapshot lists price 99 of side 0 under two ids"
    assert ids.levels() == {"1": (0, 100)}


_update = st.tuples(
    st.sampled_from(["1", "2", "3", "4"]),
    st.integers(0, 1),
    st.sampled_from([0, 99, 100, 101]),
    st.integers(0, 5),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_update, max_size=6))
def test_a_message_of_updates_alone_is_applied_as_the_general_path_applies_it(
    updates: list[tuple[str, int, int, int]],
) -> None:
    """Updates alone take a shorter path; with an insert of a fresh id after them the
    general path runs: the updates' levels, refusals and the book come out the same."""
    book = [("1", 0, 100, 2), ("2", 0, 99, 1), ("3", 1, 101, 4)]
    alone, general = IdBook(), IdBook()
    alone.load(book)
    general.load(book)
    got = alone.apply((), updates, ())
    fresh = ("9", 1, 120, 1)
    expected = general.apply((), updates, (fresh,))
    if isinstance(expected, str):
        assert got == expected
        assert alone.levels() == general.levels()
    else:
        assert got == expected[:-1]
        assert {**alone.levels(), "9": (1, 120)} == general.levels()


@settings(max_examples=500, deadline=None)
@given(st.lists(_update, max_size=6))
def test_a_message_of_deletes_alone_is_applied_as_the_general_path_applies_it(
    deletes: list[tuple[str, int, int, int]],
) -> None:
    """Deletes alone take their own path (an id deleted twice is unknown the second time);
    with an insert of a fresh id after them the general path runs: the same out."""
    book = [("1", 0, 100, 2), ("2", 0, 99, 1), ("3", 1, 101, 4)]
    alone, general = IdBook(), IdBook()
    alone.load(book)
    general.load(book)
    got = alone.apply(deletes, (), ())
    expected = general.apply(deletes, (), (("9", 1, 120, 1),))
    if isinstance(expected, str):
        assert got == expected
        assert alone.levels() == general.levels()
    else:
        assert got == expected[:-1]
        assert {**alone.levels(), "9": (1, 120)} == general.levels()


@settings(max_examples=500, deadline=None)
@given(st.lists(_update, max_size=6))
def test_a_message_of_inserts_alone_is_applied_as_the_general_path_applies_it(
    inserts: list[tuple[str, int, int, int]],
) -> None:
    """Inserts alone take their own path (an id the book or the message holds is refused);
    with an update that changes nothing before them the general path runs: the same out."""
    book = [("1", 0, 100, 2), ("3", 1, 101, 4)]
    alone, general = IdBook(), IdBook()
    alone.load(book)
    general.load(book)
    got = alone.apply((), (), inserts)
    expected = general.apply((), (("1", 0, 100, 2),), inserts)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert got == expected[1:]
    assert alone.levels() == general.levels()
