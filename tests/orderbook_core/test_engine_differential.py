"""The compiled engine and its reference agree byte for byte on random command streams,
and restoring a snapshot then replaying the rest equals never stopping."""

from __future__ import annotations

from array import array
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook_core import _engine, _pyengine
from orderbook_core.engine_types import (
    ORDER_FIELDS,
    BookEvent,
    Event,
    ExecEvent,
    OrderState,
    TradeEvent,
)

RECORDS: dict[int, type] = {Event.EXEC: ExecEvent, Event.TRADE: TradeEvent, Event.BOOK: BookEvent}
"""The record class each event kind comes as, in both engines."""

ids = st.integers(min_value=1, max_value=25)
accounts = st.integers(min_value=1, max_value=3)
prices = st.one_of(st.integers(min_value=95, max_value=105), st.sampled_from([0, -1]))
sizes = st.one_of(
    st.integers(min_value=1, max_value=12),
    st.sampled_from([0, -2]),
    st.sampled_from([2**62, 2**62 + 7, 2**63 - 1]),  # levels and totals at the int64 edge
)
WIDE = (2**63, -(2**63) - 1, 2**64)
"""Values no int64 holds: both engines raise OverflowError and change nothing."""

new_orders = st.tuples(
    st.just("new"),
    ids,
    accounts,
    st.sampled_from([0, 0, 1]),  # side, with the odd invalid value below
    st.sampled_from([0, 0, 0, 1, 2, 3]),  # order type
    prices,
    sizes,
    st.sampled_from([0, 0, 1, 2]),  # tif
    st.booleans(),  # post only
    st.sampled_from([0, 0, 0, 1, 3, 20]),  # display
    st.sampled_from([0, 97, 100, 103]),  # stop price
    st.sampled_from([0, 0, 1, 2, 3, 4]),  # self-trade mode
)
commands = st.lists(
    st.one_of(
        new_orders,
        new_orders.map(lambda c: (*c[:3], 1 - c[3], *c[4:])),
        st.tuples(st.just("new_bad"), ids, accounts, st.sampled_from([2, -1]), st.just(0)),
        st.tuples(st.just("cancel"), ids, accounts),
        st.tuples(st.just("replace"), ids, accounts, prices, sizes),
        st.tuples(st.just("mass"), accounts),
        st.tuples(st.just("wide"), st.integers(min_value=0, max_value=5), st.sampled_from(WIDE)),
    ),
    min_size=5,
    max_size=120,
)


def run(engine: Any, cmd: tuple[Any, ...]) -> bytes:
    kind = cmd[0]
    if kind == "wide":  # one argument out of int64 range, the rest a good order
        args = [7, 1, 0, 0, 100, 5, 0, False, 0, 0, 0]
        where = (0, 1, 4, 5, 8, 9)[cmd[1]]
        args[where] = cmd[2]
        before = orjson.dumps(engine.snapshot_state())
        try:
            engine.new_order(*args)
        except OverflowError:
            assert orjson.dumps(engine.snapshot_state()) == before
            return b"overflow"
        raise AssertionError(f"{args} did not overflow")
    if kind == "new":
        events = engine.new_order(*cmd[1:])
    elif kind == "new_bad":
        events = engine.new_order(cmd[1], cmd[2], cmd[3], cmd[4], 100, 1)
    elif kind == "cancel":
        events = engine.cancel(*cmd[1:])
    elif kind == "replace":
        events = engine.replace(*cmd[1:])
    else:
        events = engine.mass_cancel(cmd[1])
    assert all(type(v) is int for e in events for v in e)
    assert all(type(e) is RECORDS[e.kind] for e in events)
    return orjson.dumps([(type(e).__name__, *e) for e in events])


def views(engine: Any) -> Any:
    return (
        engine.depth(0),
        engine.depth(1),
        engine.best_bid(),
        engine.best_ask(),
        engine.order_count(),
        engine.seq,
        engine.last_price,
        tuple(  # every queue, with what resting() says of each order in it
            (side, p, tuple((oid, engine.resting(oid)) for oid in engine.order_ids(side, p)))
            for side in (0, 1)
            for p, _size, _n in engine.depth(side)
        ),
    )


@settings(max_examples=500, deadline=None)
@given(commands)
def test_engines_agree_byte_for_byte(cmds: list[tuple[Any, ...]]) -> None:
    compiled, reference = _engine.MatchingEngine(), _pyengine.MatchingEngine()
    for cmd in cmds:
        assert run(compiled, cmd) == run(reference, cmd), cmd
        assert views(compiled) == views(reference), cmd
    assert compiled.snapshot_state() == reference.snapshot_state()
    for oid in range(1, 26):  # the ids the strategy draws
        state = compiled.order(oid)
        assert state == reference.order(oid)
        assert state is None or type(state) is type(reference.order(oid)) is OrderState


@settings(max_examples=200, deadline=None)
@given(commands, st.integers(min_value=0, max_value=120), st.sampled_from(["cython", "python"]))
def test_restore_and_replay_equals_never_stopping(
    cmds: list[tuple[Any, ...]], cut: int, impl: str
) -> None:
    cls = (_engine if impl == "cython" else _pyengine).MatchingEngine
    straight = cls()
    log_straight = [run(straight, c) for c in cmds]
    first = cls()
    for c in cmds[:cut]:
        run(first, c)
    state = orjson.loads(orjson.dumps(first.snapshot_state()))  # through bytes, as on disk
    resumed = cls.restore(state)
    log_resumed = [run(resumed, c) for c in cmds[cut:]]
    assert log_resumed == log_straight[cut:]
    assert resumed.snapshot_state() == straight.snapshot_state()
    assert views(resumed) == views(straight)


def to_records(cmds: list[tuple[Any, ...]]) -> list[int]:
    """The new-order and cancel commands of a stream as run_batch records."""
    out: list[int] = []
    for c in cmds:
        if c[0] == "new":
            out += [1, *[int(v) for v in c[1:]]]
        elif c[0] == "cancel":
            out += [2, c[1], c[2]] + [0] * 9
    return out


@settings(max_examples=150, deadline=None)
@given(commands)
def test_batch_path_gives_the_per_call_events(cmds: list[tuple[Any, ...]]) -> None:
    records = array("q", to_records(cmds))
    per_call = _engine.MatchingEngine()
    expected = []
    for c in cmds:
        if c[0] == "new":
            expected += per_call.new_order(*c[1:])
        elif c[0] == "cancel":
            expected += per_call.cancel(*c[1:])
    for impl in (_engine, _pyengine):
        batch = impl.MatchingEngine()
        latencies = array("q", [0] * (len(records) // 12))
        assert batch.run_batch(records, latencies, keep=True) == len(expected)
        kept = batch.take_events()
        assert kept == expected
        assert [type(e) for e in kept] == [RECORDS[e.kind] for e in expected]
        assert all(v >= 0 for v in latencies)
        dropped = impl.MatchingEngine()
        assert dropped.run_batch(records) == len(expected)
        assert dropped.snapshot_state() == per_call.snapshot_state()


def test_order_state_names_the_fields_both_engines_fill() -> None:
    """``OrderState`` and the twin's ``_Order`` slots spell ``ORDER_FIELDS`` out; both
    engines fill an order's state by position, so a field added to one must be in all."""
    assert OrderState._fields == ORDER_FIELDS
    assert _pyengine._Order.__slots__ == ORDER_FIELDS
    assert list(_pyengine._Order.__annotations__) == list(ORDER_FIELDS)
