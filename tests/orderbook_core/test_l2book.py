"""L2 book behaviour, run against both implementations."""

from __future__ import annotations

import os
import subprocess
import sys
from array import array
from typing import Any

import pytest

from orderbook_core import _book, _pybook
from orderbook_core.errors import InvalidSize

BID, ASK = 0, 1


@pytest.fixture(params=["cython", "python"])
def book_cls(request: pytest.FixtureRequest) -> Any:
    return (_book if request.param == "cython" else _pybook).L2Book


@pytest.fixture
def book(book_cls: Any) -> Any:
    return book_cls()


def test_levels_sorted_best_first(book: Any) -> None:
    assert (
        book.apply([(BID, 99, 5), (BID, 101, 1), (BID, 100, 2), (ASK, 105, 7), (ASK, 103, 1)]) == 5
    )
    assert book.depth(BID) == [(101, 1), (100, 2), (99, 5)]
    assert book.depth(ASK, 1) == [(103, 1)]
    assert book.best_bid() == (101, 1)
    assert book.best_ask() == (103, 1)


def test_set_returns_action_and_zero_deletes(book: Any) -> None:
    assert book.set(BID, 10, 3) == 1  # ADD
    assert book.set(BID, 10, 4) == 2  # UPDATE
    assert book.set(BID, 10, 0) == 3  # DELETE
    assert book.set(BID, 10, 0) == 0  # nothing to delete
    assert book.best_bid() is None
    assert book.level_count(BID) == 0


def test_negative_size_refused_and_book_unchanged(book: Any) -> None:
    book.set(ASK, 10, 3)
    with pytest.raises(InvalidSize):
        book.set(ASK, 10, -1)
    assert book.depth(ASK) == [(10, 3)]


def test_crossed_detection_and_clear(book: Any) -> None:
    book.apply([(BID, 10, 1), (ASK, 10, 1)])
    assert book.is_crossed()
    book.clear()
    assert book.depth(BID) == [] and book.depth(ASK) == []


def test_deltas_and_last_flag(book_cls: Any) -> None:
    book = book_cls(emit_deltas=True)
    book.set(BID, 10, 5)
    book.apply([(BID, 10, 7), (ASK, 12, 1), (ASK, 13, 0)])  # the last is a no-op delete
    book.clear()
    assert book.take_deltas() == [
        (1, BID, 10, 5, 0, 1, 1),
        (2, BID, 10, 7, 0, 0, 2),
        (1, ASK, 12, 1, 0, 1, 3),  # F_LAST ends the atomic apply()
        (4, 0, 0, 0, 0, 1, 4),
    ]


def test_batch_writes_top_after_each_update_and_keeps_prefix(book_cls: Any) -> None:
    book = book_cls()
    ops = array("q", [BID, 100, 5, ASK, 103, 2, BID, 101, 1, BID, 101, 0, ASK, 102, -1, BID, 1, 1])
    tops = array("q", [0] * 24)
    with pytest.raises(InvalidSize) as info:
        book.apply_batch(ops, tops)
    assert info.value.index == 4
    assert list(tops[:16]) == [100, 5, 0, 0, 100, 5, 103, 2, 101, 1, 103, 2, 100, 5, 103, 2]
    assert book.snapshot() == ([(100, 5)], [(103, 2)])
    with pytest.raises(ValueError, match="multiple of 3"):
        book.apply_batch(array("q", [1, 2]))


def test_checksum_and_snapshot_top_n(book_cls: Any) -> None:
    book = book_cls()
    book.apply([(BID, 1002, 5), (BID, 1001, 2), (ASK, 1003, 7)])
    assert book.snapshot(1) == ([(1002, 5)], [(1003, 7)])
    assert book.checksum(10) == 3013130725  # CRC32 of b"1002:5:1003:7:1001:2"


@pytest.mark.parametrize("choice", ["python", "cython"])
def test_environment_switch_selects_implementation(choice: str) -> None:
    env = dict(os.environ, ORDERBOOK_CORE=choice)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import orderbook_core as c; print(c.IMPLEMENTATION, c.L2Book.__module__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [
        choice,
        "orderbook_core._book" if choice == "cython" else "orderbook_core._pybook",
    ]


def test_snapshot_as_deltas(book_cls: Any) -> None:
    book = book_cls(emit_deltas=True)
    book.apply([(BID, 10, 5), (BID, 9, 1), (ASK, 12, 2)])
    assert book.snapshot_deltas() == [
        (4, 0, 0, 0, 0, 2, 3),
        (1, BID, 10, 5, 0, 2, 3),
        (1, BID, 9, 1, 0, 2, 3),
        (1, ASK, 12, 2, 0, 3, 3),
    ]
    assert book.snapshot_deltas(1)[-1] == (1, ASK, 12, 2, 0, 3, 3)
