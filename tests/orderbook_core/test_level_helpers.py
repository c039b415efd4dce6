"""The compiled level helpers the sync engine uses on every frame (``bad_level``, and
``book_diff`` between two book snapshots) and their pure-Python twins agree, and the diff is
feedhandler.sync's own ``book_diff`` (the one for any two level lists)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedhandler.sync import book_diff as reference_diff
from orderbook_core import _pytext, _text

INT64_MAX = 2**63 - 1
sizes = st.integers(1, 5)
side_books = st.dictionaries(st.integers(1, 12), sizes, max_size=8)


def snapshot(bids: dict[int, int], asks: dict[int, int]) -> Any:
    """As ``L2Book.snapshot`` gives a book: bids from the highest price, asks the lowest."""
    return sorted(bids.items(), reverse=True), sorted(asks.items())


@settings(max_examples=600, deadline=None)
@given(side_books, side_books, side_books, side_books)
@example({}, {}, {5: 1}, {6: 2})
@example({5: 1, 4: 2}, {6: 1}, {}, {})
def test_book_diffs_agree(b0: Any, a0: Any, b1: Any, a1: Any) -> None:
    before, after = snapshot(b0, a0), snapshot(b1, a1)
    compiled = _text.book_diff(before, after)
    assert compiled == _pytext.book_diff(before, after) == reference_diff(before, after)
    # the diff applied to ``before`` is ``after``
    books = [dict(before[0]), dict(before[1])]
    for side, price, size in compiled:
        if size:
            books[side][price] = size
        else:
            del books[side][price]
    assert (books[0], books[1]) == (b1, a1)


cells = st.one_of(
    st.integers(-2, 3),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, True, 1.0, "1", None]),
)
levels = st.lists(
    st.one_of(st.tuples(cells, cells, cells), st.tuples(cells, cells), st.lists(cells, max_size=3)),
    max_size=5,
)


@settings(max_examples=800, deadline=None)
@given(levels)
@example([(0, 1, 0), (1, INT64_MAX, INT64_MAX)])
@example([(0, 1, 0), (2, 1, 1)])
def test_bad_levels_agree(rows: Any) -> None:
    assert _text.bad_level(rows) == _pytext.bad_level(rows)
    assert _text.bad_level(tuple(rows)) == _pytext.bad_level(rows)
