"""ITCH 5.0 replay, on bytes the tests write themselves, for both implementations."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook_core import _itch, _pyitch
from orderbook_core.errors import (
    BookError,
    InvalidSize,
    ItchFormatError,
    OrderNotFound,
    UnknownStockLocate,
)
from orderbook_core.itch_spec import MESSAGE_LENGTHS
from testing import itchgen as g
from tests.conftest import ROOT

BID, ASK = 0, 1


@pytest.fixture(params=["cython", "python"])
def impl(request: pytest.FixtureRequest) -> Any:
    return _itch if request.param == "cython" else _pyitch


def every_message_type() -> bytes:
    """One of each of the 23 message types, in an order that keeps every reference valid."""
    msgs = [
        g.system_event(1, "O"),
        g.stock_directory(7, 2, "ZVZZT"),
        g.trading_action(7, 3, "ZVZZT", "T"),
        g.reg_sho(7, 4, "ZVZZT"),
        g.participant_position(7, 5, "ZVZZT"),
        g.mwcb_decline(6),
        g.mwcb_status(7),
        g.ipo_quoting(7, 8, "ZVZZT"),
        g.luld_collar(7, 9, "ZVZZT"),
        g.operational_halt(7, 10, "ZVZZT"),
        g.add_order(7, 11, 1, "B", 300, "ZVZZT", 100_0000),
        g.add_order(7, 12, 2, "S", 200, "ZVZZT", 101_0000, mpid="GSCO"),
        g.executed(7, 13, 1, 100, 1),
        g.executed_with_price(7, 14, 2, 50, 2, 101_5000),
        g.cancel(7, 15, 1, 50),
        g.replace(7, 16, 2, 3, 400, 102_0000),
        g.trade(7, 17, 0, "B", 10, "ZVZZT", 100_5000, 3),
        g.cross_trade(7, 18, 1000, "ZVZZT", 100_5000, 4),
        g.broken_trade(7, 19, 3),
        g.imbalance(7, 20, "ZVZZT"),
        g.retail_interest(7, 21, "ZVZZT"),
        g.dlcr(7, 22, "ZVZZT"),
        g.delete(7, 23, 3),
        g.system_event(24, "C"),
    ]
    return b"".join(msgs)


def test_every_message_type_parsed_and_books_follow_the_spec(impl: Any) -> None:
    r = impl.ItchReplay()
    assert r.feed(every_message_type()) == 24
    r.finish()
    assert set(r.counts()) == set(MESSAGE_LENGTHS)
    book = r.book("ZVZZT")
    # 300 - 100 executed - 50 cancelled; order 2 replaced by 3, then 3 deleted.
    assert book.snapshot() == ([(100_0000, 150, 1)], [])
    assert r.executions("ZVZZT") == (2, 150)  # E and C; P and Q do not touch the book
    assert r.trading_state("ZVZZT") == "T"
    assert r.timestamp == 24 and r.symbols() == ["ZVZZT"]


def test_trade_log_has_every_print_once_with_the_aggressor(impl: Any) -> None:
    r = impl.ItchReplay(trades=True)
    r.feed(every_message_type())
    # E against the resting buy at its price (a sell hit it); C at its own price against
    # the resting sell; P against a hidden buy; Q a cross with no aggressor.
    assert r.take_trades() == [
        ("ZVZZT", 13, 1, 100_0000, 100, ASK),
        ("ZVZZT", 14, 2, 101_5000, 50, BID),
        ("ZVZZT", 17, 3, 100_5000, 10, ASK),
        ("ZVZZT", 18, 4, 100_5000, 1000, 2),
    ]
    assert r.take_trades() == []
    quiet = impl.ItchReplay()  # the log is opt-in: a plain replay keeps nothing
    quiet.feed(every_message_type())
    assert quiet.take_trades() == [] and quiet.executions("ZVZZT") == (2, 150)


def test_non_printable_execution_changes_the_book_but_is_no_print(impl: Any) -> None:
    r = impl.ItchReplay(trades=True)
    r.feed(
        g.add_order(1, 1, 5, "S", 100, "X", 50_0000)
        + g.executed_with_price(1, 2, 5, 40, 9, 49_0000, printable="N")
        + g.cross_trade(1, 3, 0, "X", 50_0000, 10)
    )
    assert r.book("X").snapshot() == ([], [(50_0000, 60, 1)])
    assert r.take_trades() == []  # nor is a cross of zero shares


def test_failed_execution_leaves_no_print(impl: Any) -> None:
    r = impl.ItchReplay(trades=True)
    with pytest.raises(OrderNotFound):
        r.feed(g.add_order(1, 1, 5, "S", 100, "X", 50_0000) + g.executed(1, 2, 6, 10, 1))
    assert r.take_trades() == [] and r.book("X").snapshot() == ([], [(50_0000, 100, 1)])


def test_c_executes_at_its_own_price_against_the_resting_order(impl: Any) -> None:
    r = impl.ItchReplay()
    r.feed(
        g.add_order(1, 1, 5, "S", 100, "X", 50_0000)
        + g.executed_with_price(1, 2, 5, 40, 9, 49_0000)
    )
    assert r.book("X").snapshot() == ([], [(50_0000, 60, 1)])


def test_replace_of_partially_executed_order_keeps_side_and_loses_priority(impl: Any) -> None:
    r = impl.ItchReplay()
    r.feed(
        g.add_order(1, 1, 1, "B", 500, "X", 10_0000)
        + g.add_order(1, 2, 2, "B", 100, "X", 10_0000)
        + g.executed(1, 3, 1, 200, 1)
        + g.replace(1, 4, 1, 9, 300, 10_0000)
    )
    book = r.book("X")
    assert book.order_ids(BID, 10_0000) == [2, 9]
    assert book.order(9) == (BID, 10_0000, 300)
    assert book.snapshot() == ([(10_0000, 400, 2)], [])


def test_delete_of_last_order_removes_the_level(impl: Any) -> None:
    r = impl.ItchReplay()
    r.feed(
        g.add_order(1, 1, 1, "S", 100, "X", 11_0000)
        + g.add_order(1, 2, 2, "S", 100, "X", 12_0000)
        + g.delete(1, 3, 1)
    )
    assert r.book("X").depth(ASK) == [(12_0000, 100, 1)]


def test_full_execution_by_e_removes_the_order(impl: Any) -> None:
    r = impl.ItchReplay()
    r.feed(g.add_order(1, 1, 1, "S", 100, "X", 11_0000) + g.executed(1, 2, 1, 100, 1))
    assert r.book("X").order_count() == 0


def test_symbol_filter_builds_only_that_book(impl: Any) -> None:
    data = g.random_session(3, 3000, ("AAPL", "MSFT", "TSLA"))
    everything = impl.ItchReplay()
    everything.feed(data)
    only = impl.ItchReplay(symbols=["MSFT"])
    only.feed(data)
    assert only.symbols() == ["MSFT"]
    assert only.book("MSFT").snapshot() == everything.book("MSFT").snapshot()
    assert only.ignored > 0
    with pytest.raises(KeyError):
        only.book("AAPL")


def test_split_feeds_equal_one_feed(impl: Any) -> None:
    data = g.random_session(4, 2000)
    whole = impl.ItchReplay()
    whole.feed(data)
    pieces = impl.ItchReplay()
    for i in range(0, len(data), 777):
        pieces.feed(data[i : i + 777])
    pieces.finish()
    assert pieces.messages == whole.messages
    assert pieces.book("AAPL").snapshot() == whole.book("AAPL").snapshot()


def test_limit_stops_after_n_messages(impl: Any) -> None:
    data = g.add_order(1, 1, 1, "B", 100, "X", 10_0000) + g.add_order(
        1, 2, 2, "B", 100, "X", 9_0000
    )
    r = impl.ItchReplay()
    assert r.feed(data, limit=1) == 1
    assert r.book("X").depth(BID) == [(10_0000, 100, 1)]


def test_truncated_input_named_with_offset(impl: Any) -> None:
    data = g.add_order(1, 1, 1, "B", 100, "X", 10_0000) + g.delete(1, 2, 1)
    r = impl.ItchReplay()
    r.feed(data[:-5])
    with pytest.raises(
        ItchFormatError, match=r"truncated ITCH input: 16 byte\(s\) .* 'D' at byte 38"
    ):
        r.finish()
    assert r.book("X").depth(BID) == [(10_0000, 100, 1)]  # the valid prefix is kept


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"\x00\x03Z12", r"unknown ITCH message type 'Z' at byte 38"),
        (b"\x00\x05D1234", r"ITCH 'D' message at byte 38 has length 5, the spec says 19"),
    ],
)
def test_corrupt_bytes_named_and_prefix_kept(impl: Any, bad: bytes, message: str) -> None:
    r = impl.ItchReplay()
    with pytest.raises(ItchFormatError, match=message) as info:
        r.feed(g.add_order(1, 1, 1, "B", 100, "X", 10_0000) + bad + g.delete(1, 2, 1))
    assert info.value.offset == 38
    assert r.messages == 1 and r.book("X").order_count() == 1
    assert r.feed(b"") == 1  # the bad message was skipped; what followed it applies
    assert r.book("X").order_count() == 0 and r.errors == 1


def test_book_errors_name_offset_and_type(impl: Any) -> None:
    r = impl.ItchReplay()
    data = g.add_order(1, 1, 1, "B", 100, "X", 10_0000) + g.executed(1, 2, 99, 10, 1)
    with pytest.raises(OrderNotFound, match=r"ITCH 'E' message at byte 38: order id 99") as info:
        r.feed(data)
    assert (info.value.offset, info.value.msg_type) == (38, "E")
    with pytest.raises(InvalidSize, match="ITCH 'X' message"):
        r.feed(g.cancel(1, 3, 1, 500))
    assert r.book("X").order(1) == (BID, 10_0000, 100)


def test_unannounced_stock_locate_is_a_typed_error_naming_locate_and_offset(impl: Any) -> None:
    r = impl.ItchReplay()
    data = g.add_order(1, 1, 1, "B", 100, "X", 10_0000) + g.delete(7, 2, 5)
    with pytest.raises(UnknownStockLocate) as info:
        r.feed(data)
    err = info.value
    assert isinstance(err, ItchFormatError) and isinstance(err, BookError)
    assert not isinstance(err, KeyError)
    assert (err.locate, err.offset, err.msg_type) == (7, 38, "D")
    assert str(err) == (
        "ITCH 'D' message at byte 38: stock locate 7 was never announced (no R, A or F message)"
    )
    assert r.errors == 1 and r.counts() == {"A": 1}
    assert r.feed(g.delete(1, 3, 1)) == 1  # the stream goes on after the refused message
    assert r.book("X").order_count() == 0


def test_hub_itch_names_an_unannounced_locate(tmp_path: Path) -> None:
    path = tmp_path / "partial.itch"
    path.write_bytes(g.add_order(1, 1, 1, "B", 100, "AAPL", 150_0000) + g.delete(9, 2, 4))
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "itch", str(path), "--symbol", "AAPL"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"hub: error: {path}: ITCH 'D' message at byte 38: stock locate 9 was never announced "
        "(no R, A or F message)"
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=50, max_value=1500))
def test_compiled_and_python_replays_agree(seed: int, n: int) -> None:
    data = g.random_session(seed, n, ("AAPL", "MSFT"))
    compiled, reference = _itch.ItchReplay(), _pyitch.ItchReplay()
    assert compiled.feed(data) == reference.feed(data)
    assert compiled.counts() == reference.counts()
    for symbol in ("AAPL", "MSFT"):
        assert compiled.book(symbol).snapshot() == reference.book(symbol).snapshot()
        assert compiled.book(symbol).checksum(10) == reference.book(symbol).checksum(10)
        assert compiled.executions(symbol) == reference.executions(symbol)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=50, max_value=1500))
def test_compiled_and_python_trade_logs_agree(seed: int, n: int) -> None:
    data = g.random_session(seed, n, ("AAPL", "MSFT", "TSLA"))
    compiled = _itch.ItchReplay(["AAPL", "MSFT"], trades=True)
    reference = _pyitch.ItchReplay(["AAPL", "MSFT"], trades=True)
    prints: tuple[list[Any], list[Any]] = ([], [])
    for i in range(0, len(data), 1000):  # drained between pieces, as a publisher would
        compiled.feed(data[i : i + 1000])
        prints[0].extend(compiled.take_trades())
        reference.feed(data[i : i + 1000])
        prints[1].extend(reference.take_trades())
    assert prints[0] == prints[1]
    assert {p[0] for p in prints[0]} <= {"AAPL", "MSFT"}
    assert [p[1] for p in prints[0]] == sorted(p[1] for p in prints[0])


@pytest.mark.parametrize("compress", [False, True])
def test_hub_itch_prints_the_book(tmp_path: Path, compress: bool) -> None:
    data = (
        g.stock_directory(1, 1, "AAPL")
        + g.add_order(1, 2, 1, "B", 100, "AAPL", 150_0000)
        + g.add_order(1, 3, 2, "B", 200, "AAPL", 150_0000)
        + g.add_order(1, 4, 3, "S", 50, "AAPL", 150_1000)
        + g.delete(1, 5, 3)
    )
    path = tmp_path / ("day.itch.gz" if compress else "day.itch")
    path.write_bytes(gzip.compress(data) if compress else data)
    run = [sys.executable, "-m", "app.cli", "itch", str(path), "--symbol", "AAPL"]
    out = subprocess.run(
        [*run, "--after", "4"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == {"bids": [[1500000, 300, 2]], "asks": [[1501000, 50, 1]]}
    out = subprocess.run(
        [*run, "--depth", "1"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == {"bids": [[1500000, 300, 2]], "asks": []}


def test_hub_itch_reports_bad_bytes_with_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.itch"
    path.write_bytes(g.add_order(1, 1, 1, "B", 100, "AAPL", 150_0000) + b"\x00\x03Z12")
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "itch", str(path), "--symbol", "AAPL"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == f"hub: error: {path}: unknown ITCH message type 'Z' at byte 38"
