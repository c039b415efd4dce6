"""The compiled L2 book and its pure-Python twin agree on random operation streams."""

from __future__ import annotations

import random
import zlib
from array import array
from typing import Any

import pytest
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


def _written(side: int, price: int, size: int) -> str:
    return f"{side}/{price}:{size}"


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
        for n in (25, 2, 0):  # OKX's: the texts sent where there are, odd prices' written
            bids, asks = (
                {p: f"{p}:é{s}" for p, s in side if p % 2} for side in compiled.snapshot()
            )
            assert compiled.text_checksum(bids, asks, n, _written) == reference.text_checksum(
                bids, asks, n, _written
            )
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
    st.lists(
        st.tuples(
            sides,
            st.one_of(st.integers(1, 10**12), st.integers(1, 2**63 - 1)),
            st.one_of(st.integers(1, 10**15), st.integers(1, 2**63 - 1)),
        ),
        max_size=40,
    ),
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


# The compiled book keeps each side on a price ladder: a dense window of prices with
# sparse ones in ordered maps beside it (ladder.hpp). These streams cross every edge of
# that: prices in and past the window's first placement, clusters far apart, the int64
# extremes, a book that drifts far from where it started.
ladder_prices = st.one_of(
    st.integers(min_value=1, max_value=700),
    st.integers(min_value=5_000, max_value=5_040),
    st.integers(min_value=2**40, max_value=2**40 + 300),
    st.integers(min_value=2**63 - 300, max_value=2**63 - 1),
    st.sampled_from([1, 2, 255, 256, 257, 4095, 4096, 4097, 65_536, 2**62]),
)
ladder_stream = st.lists(
    st.one_of(
        st.tuples(st.just("set"), sides, ladder_prices, st.integers(min_value=0, max_value=5)),
        st.tuples(st.just("clear")),
        st.tuples(st.just("trim"), st.integers(min_value=1, max_value=8)),
    ),
    min_size=5,
    max_size=300,
)


def _same(compiled: Any, reference: Any) -> None:
    assert compiled.snapshot() == reference.snapshot()
    assert (compiled.best_bid(), compiled.best_ask()) == (
        reference.best_bid(),
        reference.best_ask(),
    )
    assert compiled.top() == reference.top() == tuple(_tops(reference))
    assert [compiled.level_count(s) for s in (0, 1)] == [reference.level_count(s) for s in (0, 1)]
    assert compiled.depth(0, 3) == reference.depth(0, 3)
    assert compiled.digits_checksum(5) == reference.digits_checksum(5)


@settings(max_examples=400, deadline=None)
@given(ladder_stream)
def test_l2_books_agree_on_sparse_far_and_extreme_prices(ops: list[tuple[Any, ...]]) -> None:
    compiled, reference = _book.L2Book(), _pybook.L2Book()
    for op in ops:
        if op[0] == "clear":
            compiled.clear()
            reference.clear()
        elif op[0] == "trim":
            assert compiled.trim(op[1]) == reference.trim(op[1])
        else:
            assert compiled.set(*op[1:]) == reference.set(*op[1:]), op
            assert compiled.size_at(op[1], op[2]) == reference.size_at(op[1], op[2])
        _same(compiled, reference)


def _tops(book: Any) -> list[int]:
    bid, ask = book.best_bid() or (0, 0), book.best_ask() or (0, 0)
    return [*bid, *ask]


@pytest.mark.parametrize("depth", [8, 2_000])
def test_l2_books_agree_update_by_update_on_a_book_that_drifts_far(depth: int) -> None:
    """A book walking 300,000 ticks up and back, its levels left behind deleted as a venue
    deletes them, with stray far levels kept: the best bid and ask after every update (the
    batch's tops) and the whole book at checkpoints."""
    rng = random.Random(depth)
    compiled, reference = _book.L2Book(), _pybook.L2Book()
    mid = 1_000_000
    batch: list[int] = []
    want: list[int] = []
    strays = {1, 2**63 - 1}
    for step in range(120_000):
        mid += 5 if step < 60_000 else -5
        side = rng.randrange(2)
        away = rng.randrange(1, depth)
        price = mid + away if side else mid - away
        size = 0 if rng.random() < 0.3 else rng.randrange(1, 100)
        if step % 997 == 0:
            price = rng.choice([1, 2**63 - 1])
        changes = [(side, price, size)]
        if step % 64 == 0:  # the levels the walk left behind
            changes += [
                (s, p, 0)
                for s in (0, 1)
                for p, _ in reference.depth(s)
                if p not in strays and abs(p - mid) > depth + 10
            ]
        for change in changes:
            batch += change
            reference.set(*change)
            want += _tops(reference)
        if len(batch) >= 3 * 512 or step == 119_999:
            tops = array("q", [0] * len(want))
            compiled.apply_batch(array("q", batch), tops)
            assert list(tops) == want, step
            batch.clear()
            want.clear()
            if step % 16 == 0:
                _same(compiled, reference)
    _same(compiled, reference)
    assert (
        min(compiled.level_count(0), compiled.level_count(1)) > depth // 40
    )  # the walk outruns the updates: a thin book


def test_l2_books_agree_on_random_dense_and_sparse_streams() -> None:
    """Seeded streams (hypothesis rarely deletes a best level with its neighbour set):
    every update checked, prices dense near one cluster and sparse around it."""
    rng = random.Random(11)
    for trial in range(300):
        compiled, reference = _book.L2Book(), _pybook.L2Book()
        spread = rng.choice([4, 20, 300, 5_000, 10**12])
        for _ in range(200):
            side = rng.randrange(2)
            price = rng.randint(1, spread) if rng.random() < 0.9 else rng.randint(1, 2**63 - 1)
            size = rng.choice([0, 0, 1, 2, 3])
            assert compiled.set(side, price, size) == reference.set(side, price, size)
            assert _tops(compiled) == _tops(reference), (trial, side, price, size)
            if rng.random() < 0.01:
                compiled.clear()
                reference.clear()
        _same(compiled, reference)
