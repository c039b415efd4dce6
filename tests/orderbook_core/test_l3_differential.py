"""The compiled L3 book and its Python twin agree on random operation streams:
same results, same errors, same books, same deltas, same checksums."""

from __future__ import annotations

from array import array
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook_core import _l3, _pyl3
from orderbook_core.errors import BookError

# Few ids and a narrow price band so operations hit live orders, levels
# share queues and bids meet asks; invalid values appear now and then.
ids = st.integers(min_value=1, max_value=10)
prices = st.one_of(st.integers(min_value=1, max_value=12), st.sampled_from([0, -1]))
sizes = st.one_of(st.integers(min_value=1, max_value=6), st.sampled_from([0, -1, 7, 50]))
sides = st.integers(min_value=0, max_value=1)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), ids, sides, prices, sizes),
        st.tuples(st.just("reduce"), ids, sizes),
        st.tuples(st.just("execute"), ids, sizes),
        st.tuples(st.just("delete"), ids),
        st.tuples(st.just("replace"), ids, ids, prices, sizes),
        st.tuples(st.just("batch"), st.lists(st.integers(min_value=-1, max_value=12), max_size=25)),
        st.tuples(st.just("clear")),
    ),
    min_size=5,
    max_size=120,
)


def call(book: Any, op: tuple[Any, ...]) -> Any:
    try:
        if op[0] == "batch":
            values = op[1][: len(op[1]) // 5 * 5]
            return book.apply_batch(array("q", values))
        return getattr(book, op[0])(*op[1:])
    except (BookError, ValueError) as exc:
        return (type(exc).__name__, getattr(exc, "index", None))


def state(book: Any) -> Any:
    return (
        book.snapshot(),
        book.order_count(),
        book.best_bid(),
        book.best_ask(),
        book.checksum(5),
        book.is_crossed(),
        book.take_deltas(),
        book.snapshot_deltas(2),
    )


@settings(max_examples=600, deadline=None)
@given(ops, st.booleans())
def test_l3_books_agree(operations: list[tuple[Any, ...]], allow_cross: bool) -> None:
    compiled = _l3.L3Book(emit_deltas=True, allow_cross=allow_cross)
    reference = _pyl3.L3Book(emit_deltas=True, allow_cross=allow_cross)
    for op in operations:
        assert call(compiled, op) == call(reference, op), op
        assert state(compiled) == state(reference), op
    for side in (0, 1):
        for price, _size, _count in reference.depth(side):
            assert compiled.order_ids(side, price) == reference.order_ids(side, price)
