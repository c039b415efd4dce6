"""The compiled L2 book and its pure-Python twin agree on random operation streams."""

from __future__ import annotations

import zlib
from array import array
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook_core import _book, _pybook
from orderbook_core.errors import BookError

PAST_INT64 = [2**63, -(2**63) - 1, 2**63 - 1]
"""Values at and past the int64 edge: the twin refuses them as the compiled conversion does."""
prices = st.one_of(st.integers(min_value=1, max_value=15), st.sampled_from([0, -2, *PAST_INT64]))
sizes = st.one_of(st.integers(min_value=0, max_value=20), st.sampled_from([-3, *PAST_INT64]))
sides = st.integers(min_value=0, max_value=1)


def _l2_call(book: Any, op: tuple[Any, ...]) -> Any:
    try:
        if op[0] == "batch":
            values = array("q", op[1][: len(op[1]) // 3 * 3])
            tops = array("q", [0] * (4 * (len(values) // 3)))
            return book.apply_batch(values, tops), list(tops)
        if op[0] == "apply":
            return book.apply(op[1])
        if op[0] == "trim":
            return book.trim(op[1])
        return book.set(*op[1:])
    except (BookError, ValueError, OverflowError) as exc:
        return type(exc).__name__, getattr(exc, "index", None)


l2_stream = st.lists(
    st.one_of(
        st.tuples(st.just("set"), sides, prices, sizes),
        st.tuples(st.just("apply"), st.lists(st.tuples(sides, prices, sizes), max_size=6)),
        st.tuples(st.just("batch"), st.lists(st.integers(min_value=-1, max_value=12), max_size=30)),
        st.tuples(st.just("trim"), st.integers(min_value=-1, max_value=6)),
    ),
    min_size=5,
    max_size=150,
)


@settings(max_examples=400, deadline=None)
@given(l2_stream)
def test_l2_books_agree(ops: list[tuple[Any, ...]]) -> None:
    compiled, reference = _book.L2Book(emit_deltas=True), _pybook.L2Book(emit_deltas=True)
    for op in ops:
        assert _l2_call(compiled, op) == _l2_call(reference, op), op
        assert compiled.snapshot() == reference.snapshot()
        assert compiled.checksum(3) == reference.checksum(3)
        for n, shifts in ((10, (0, 0)), (3, (2, -1)), (0, (0, 0)), (4, (-25, 20))):
            assert compiled.digits_checksum(n, *shifts) == reference.digits_checksum(n, *shifts)
        assert compiled.is_crossed() == reference.is_crossed()
        assert compiled.take_deltas() == reference.take_deltas()
        assert compiled.snapshot_deltas(2) == reference.snapshot_deltas(2)


def kraken_text_checksum(book: Any, n: int, price_shift: int, size_shift: int) -> int:
    """Kraken's checksum as the venue's documents spell it: the top asks then bids, each
    price and size as the digits of the (scaled) integer, concatenated."""

    def digits(v: int, shift: int) -> str:
        return str(v * 10**shift if shift >= 0 else v // 10**-shift)

    levels = book.depth(1, n) + book.depth(0, n)
    text = "".join(digits(p, price_shift) + digits(s, size_shift) for p, s in levels)
    return zlib.crc32(text.encode())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(sides, st.integers(1, 10**12), st.integers(1, 10**15)), max_size=40),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=-20, max_value=12),
    st.integers(min_value=-20, max_value=12),
)
def test_digits_checksum_is_the_text_checksum(
    levels: list[tuple[int, int, int]], n: int, price_shift: int, size_shift: int
) -> None:
    for core in (_book, _pybook):
        book = core.L2Book()
        book.apply(levels)
        expected = kraken_text_checksum(book, n, price_shift, size_shift)
        assert book.digits_checksum(n, price_shift, size_shift) == expected


def test_trim_drops_the_levels_past_the_depth_and_says_which() -> None:
    for core in (_book, _pybook):
        book = core.L2Book(emit_deltas=True)
        book.apply([(0, p, 1) for p in (10, 9, 8, 7)] + [(1, p, 2) for p in (11, 12, 13)])
        book.take_deltas()
        assert book.trim(2) == [(0, 8, 0), (0, 7, 0), (1, 13, 0)]
        assert book.snapshot() == ([(10, 1), (9, 1)], [(11, 2), (12, 2)])
        assert [d[:4] for d in book.take_deltas()] == [(3, 0, 8, 0), (3, 0, 7, 0), (3, 1, 13, 0)]
        assert book.trim(5) == []
