"""The compiled L2 book and its pure-Python twin agree on random operation streams."""

from __future__ import annotations

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
        return book.set(*op[1:])
    except (BookError, ValueError, OverflowError) as exc:
        return type(exc).__name__, getattr(exc, "index", None)


l2_stream = st.lists(
    st.one_of(
        st.tuples(st.just("set"), sides, prices, sizes),
        st.tuples(st.just("apply"), st.lists(st.tuples(sides, prices, sizes), max_size=6)),
        st.tuples(st.just("batch"), st.lists(st.integers(min_value=-1, max_value=12), max_size=30)),
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
        assert compiled.is_crossed() == reference.is_crossed()
        assert compiled.take_deltas() == reference.take_deltas()
        assert compiled.snapshot_deltas(2) == reference.snapshot_deltas(2)
