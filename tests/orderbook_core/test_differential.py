"""The compiled core and its pure-Python twin agree on random operation streams."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook_core import _book, _pybook
from orderbook_core.errors import BookError

prices = st.integers(min_value=-2, max_value=30)
sizes = st.integers(min_value=-3, max_value=40)
sides = st.integers(min_value=0, max_value=1)
ids = st.integers(min_value=1, max_value=60)

engine_ops = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), ids, sides, prices, sizes),
        st.tuples(st.just("market"), ids, sides, sizes),
        st.tuples(st.just("cancel"), ids),
    ),
    max_size=300,
)
l2_ops = st.lists(st.tuples(sides, prices, sizes), max_size=300)


def _call(obj: Any, op: tuple[Any, ...]) -> Any:
    method = {"limit": "submit_limit", "market": "submit_market", "cancel": "cancel"}[op[0]]
    try:
        return getattr(obj, method)(*op[1:])
    except BookError as exc:
        return type(exc).__name__


def _state(engine: Any) -> Any:
    return (
        engine.depth(0),
        engine.depth(1),
        engine.best_bid(),
        engine.best_ask(),
        engine.order_count(),
    )


@settings(max_examples=300, deadline=None)
@given(engine_ops)
def test_matching_engines_agree(ops: list[tuple[Any, ...]]) -> None:
    compiled, reference = _book.MatchingEngine(), _pybook.MatchingEngine()
    for op in ops:
        assert _call(compiled, op) == _call(reference, op), op
        assert _state(compiled) == _state(reference), op
    for side in (0, 1):
        for price, _size, _count in reference.depth(side):
            assert compiled.order_ids(side, price) == reference.order_ids(side, price)


@settings(max_examples=300, deadline=None)
@given(l2_ops)
def test_l2_books_agree(ops: list[tuple[int, int, int]]) -> None:
    compiled, reference = _book.L2Book(), _pybook.L2Book()
    for op in ops:
        results: list[int | str] = []
        for book in (compiled, reference):
            try:
                results.append(book.set(*op))
            except BookError as exc:
                results.append(type(exc).__name__)
        assert results[0] == results[1], op
        assert compiled.depth(0) == reference.depth(0)
        assert compiled.depth(1) == reference.depth(1)
        assert compiled.is_crossed() == reference.is_crossed()
    assert compiled.depth(0, 3) == reference.depth(0, 3)
