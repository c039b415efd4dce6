"""A poisoned journal never becomes a crash loop: the order path starts, refuses what
today's checks refuse (logged, counted), keeps every acknowledged id; and no command read
back, however mangled, nor any message through the checks, can make apply raise."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput
from client.orders import OrderClient
from hub.config import FeedConfig, OrdersConfig
from hub.events import BookUpdate
from hub.ops import metrics
from tests.trading.venues import ALICE, BOB, OFF, accounts, new, old_new, record, sane, venue
from trading.gateway import OrderPath
from trading.journal import Journal, _line, encode
from trading.messages import Command, New, Sim
from trading.risk import Account
from trading.simulator import SimulatedExchange
from trading.venue import Original, Reject, TradingVenue

KEYS = {ALICE: "alice-key-1-0123456789abcdef0123456789", BOB: "bob-key-12-0123456789abcdef012345"}
FIRST_ID = 10**12


def refused_count(reason: str) -> float:
    return (
        metrics("orders").get_sample_value("hub_orders_replay_refused_total", {"reason": reason})
        or 0
    )


async def test_the_order_path_starts_on_a_poisoned_journal_and_keeps_acked_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = FeedConfig(symbols=("BTC-USD",), rate=0.001, seed=2)
    x = SimulatedExchange(feed.venue, "BTC-USD", feed.seed)
    for _ in range(300):
        x.step(1)
    bid = x.engine.best_bid()
    assert bid is not None
    px = bid[0] * 95 // 100  # 5 % under the bid
    good = old_new(ALICE, "a1", px, 1000)
    later = old_new(ALICE, "a2", px - 3, 2000)
    journal = tmp_path / "orders.journal"
    j = Journal(journal)
    commands: list[Command] = [
        Sim("BTC-USD", 300, 1),
        good,
        old_new(BOB, "b1", px, 2**62),  # as a venue without int64 bounds journaled them
        old_new(BOB, "b2", px, 2**62),
        Sim("DOGE-USD", 5, 3),
        later,
    ]
    for c in commands:
        j.append(c)
    j._pending.insert(4, _line(b'["teleport",3]'))  # not this venue's writing at all
    j.commit_now()
    j.close()
    before = {r: refused_count(r) for r in ("size_limit", "malformed", "unknown_symbol")}
    bus = InProcessBus()
    events = bus.subscribe()
    orders = OrdersConfig(enabled=True, port=0, journal=str(journal))
    people = [Account(a, name, KEYS[a], OFF) for a, name in ((ALICE, "alice"), (BOB, "bob"))]
    path = OrderPath(orders, feed, FeedOutput(bus, MemorySnapshots()), people)
    caplog.set_level(logging.ERROR, logger="hub.orders")
    task = asyncio.create_task(path.run())
    try:
        while not path.port:  # noqa: ASYNC110 - polling the server's start
            await asyncio.sleep(0.01)
        url = f"ws://127.0.0.1:{path.port}/orders"
        bob, hello = await OrderClient.logon(url, KEYS[BOB])
        assert hello["last_seq"] == 2
        await bob.send({"op": "resend", "from_seq": 1})
        resent = await bob.until(lambda m: m["type"] == "resend_done")
        alice, _ = await OrderClient.logon(url, KEYS[ALICE])
        await alice.send({"op": "cancel", "order_id": str(FIRST_ID + 3)})  # a2's acked id
        cancelled = await alice.until(lambda m: m.get("exec_type") == "cancelled")
        await alice.send(new("a3", price=x.instrument.tick.to_str(px)))
        ack = await alice.until(lambda m: m.get("cl_ord_id") == "a3")
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{path.port}/metrics").read()
        )
        await alice.close()
        await bob.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [(r["cl_ord_id"], r["order_id"], r["reason"]) for r in resent[:-1]] == [
        ("b1", str(FIRST_ID + 1), "replay_refused"),
        ("b2", str(FIRST_ID + 2), "replay_refused"),
    ]
    assert cancelled[-1]["cl_ord_id"] == "a2" and cancelled[-1]["order_id"] == str(FIRST_ID + 3)
    assert ack[-1]["order_id"] == str(FIRST_ID + 4)
    assert refused_count("size_limit") - before["size_limit"] == 2
    assert refused_count("malformed") - before["malformed"] == 1
    assert refused_count("unknown_symbol") - before["unknown_symbol"] == 1
    assert b'hub_orders_replay_refused_total{reason="size_limit"}' in text
    lines = [r for r in caplog.records if r.getMessage().startswith("journaled command refused")]
    assert [(vars(r)["reason"], vars(r)["position"]) for r in lines] == [
        ("size_limit", 3),
        ("size_limit", 4),
        ("malformed", 5),
        ("unknown_symbol", 6),
    ]
    assert "notional is more than the venue can hold" in lines[0].getMessage()
    # The book is the one the good commands make: a1 and a3 at px (a2 cancelled), nothing
    # of the 2**62 orders.
    expected = TradingVenue({"BTC-USD": SimulatedExchange(feed.venue, "BTC-USD", 2)}, people)
    for c in (commands[0], good, old_new(ALICE, "a3", px, 1000)):
        expected.apply(c)
    for side in (0, 1):
        got = path.venue.exchanges["BTC-USD"].engine.depth(side)
        assert got == expected.exchanges["BTC-USD"].engine.depth(side)
    published = []
    while not events.empty():
        published.append(events.get_nowait())
    sizes = [c[2] for e in published if isinstance(e, BookUpdate) for c in e.changes]
    assert sizes and all(0 <= s < 2**63 for s in sizes)
    sane(path.venue)


# --- fuzz: nothing read back or checked makes apply raise ---------------------------------

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([-1, 0, 1, 2, 5, 2**62, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["BTC-USD", "ETH-USD", "DOGE-USD", "open", "halted", [], {}, [1], {"a": 1}]),
)


@st.composite
def mangled(draw: st.DrawFn, base: list[list[Any]]) -> list[Any]:
    """A real command record with some fields (or its kind) replaced by hostile values, or
    dropped."""
    cmd: list[Any] = copy.deepcopy(draw(st.sampled_from(base)))
    for _ in range(draw(st.integers(0, 3))):
        if not cmd:
            break
        at = draw(st.integers(0, len(cmd) - 1))
        if draw(st.booleans()):
            cmd[at] = draw(HOSTILE)
        else:
            del cmd[at]
    return cmd


def real_commands() -> list[list[Any]]:
    """One of every kind, as the venue writes them (records read back)."""
    v, log = venue(OFF, warm=50)
    out: list[Command] = [*log]
    for m in (
        new("f1", price="64000.00"),
        new("f2", price="64000.00", type="stop_limit", stop_price="64100.00"),
        {"op": "replace", "orig_cl_ord_id": "f1", "qty": "0.02"},
        {"op": "cancel", "orig_cl_ord_id": "f1"},
        {"op": "mass_cancel", "symbol": "BTC-USD"},
        {"op": "kill_switch", "on": False},
        {"op": "symbol_state", "symbol": "BTC-USD", "state": "open"},
    ):
        account = 1000 if m["op"] == "symbol_state" else ALICE
        cmd = v.check(account, m, 9)
        assert not isinstance(cmd, Reject | Original), (m, cmd)
        v.apply(cmd)
        out.append(cmd)
    return [record(c) for c in out]


BASE = real_commands()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mangled(BASE), min_size=1, max_size=25))
def test_replay_of_mangled_commands_never_raises_and_is_deterministic(
    cmds: list[list[Any]],
) -> None:
    results = []
    for _ in range(2):
        v, _log = venue(OFF, warm=50)
        answers = []
        for cmd in cmds:
            outcome, refusal = v.replay(cmd)
            answers.append((refusal, len(outcome.events), len(outcome.reports)))
            sane(v)
        results.append((answers, v.next_order_id, {a: s.seq for a, s in v.state.items()}))
    assert results[0] == results[1]


MESSAGE_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            *("symbol", "side", "type", "price", "qty", "tif", "stop_price", "display_qty"),
            *("stp", "post_only", "orig_cl_ord_id", "order_id", "on", "state", "colour"),
        ]
    ),
    st.one_of(
        HOSTILE,
        st.sampled_from(["buy", "sell", "limit", "market", "stop", "stop_limit", "ioc", "fok"]),
        st.sampled_from(["64000.00", "64100.00", "0.01", "0", "46116860184273.87904", "9" * 30]),
        st.sampled_from(["99999999999999.99999", "92233720368547.75807", "0.01", "c0", "c1"]),
    ),
    max_size=3,
)
BASES: dict[str, dict[str, Any]] = {
    "new": {"symbol": "BTC-USD", "side": "buy", "price": "64000.00", "qty": "0.01"},
    "replace": {"qty": "0.02"},
    "cancel": {},
    "mass_cancel": {"symbol": "BTC-USD"},
    "kill_switch": {"on": False},
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(BASES)), st.sampled_from([ALICE, BOB]), MESSAGE_FIELDS),
        min_size=1,
        max_size=20,
    )
)
def test_whatever_the_checks_accept_applies_without_raising(
    msgs: list[tuple[str, int, dict[str, Any]]],
) -> None:
    """The checks catch everything: apply never fails on a checked command (a good message
    with up to three fields made hostile), the log replays to the same venue, and no level
    ever leaves int64."""
    v, log = venue(OFF, warm=50)
    for i, (op, account, fields) in enumerate(msgs):
        m = {"op": op, "cl_ord_id": f"c{i}", "orig_cl_ord_id": f"c{max(i - 1, 0)}"}
        m |= BASES[op] | fields
        if op == "new":
            del m["orig_cl_ord_id"]
        m = orjson.loads(json.dumps(m))  # as the wire carries it (ints past 64 bits: floats)
        checked = v.check(account, m, i)
        if not isinstance(checked, Reject | Original):
            v.apply(checked)
            log.append(checked)
        sane(v)
    again = TradingVenue(
        {s: SimulatedExchange("SIM", s, 3) for s in ("BTC-USD", "ETH-USD")}, accounts(OFF)
    )
    for cmd in log:
        assert again.replay(record(cmd))[1] is None, cmd
    assert again.next_order_id == v.next_order_id
    assert {a: list(s.reports) for a, s in again.state.items()} == {
        a: list(s.reports) for a, s in v.state.items()
    }


async def test_kafka_log_refuses_records_that_are_not_commands(
    services: dict[str, str], unique: str
) -> None:
    """Records in the log topic that are not command records are refused (counted,
    skipped) and the poisoned order replays as refused, as from the journal file."""
    from aiokafka import AIOKafkaProducer

    from hub.config import KafkaConfig
    from trading.kafka_log import KafkaLog
    from trading.replay import replayed

    cfg = KafkaConfig(bootstrap=services["kafka"], topic_prefix=unique)
    log = KafkaLog(cfg)
    await log.open()  # creates the topic
    await log.aclose()
    v, warm = venue(warm=50)
    bid = v.exchanges["BTC-USD"].engine.best_bid()
    assert bid is not None
    records = [
        *(encode(c) for c in warm),
        b"\x00\xffnot json",
        b"[1, 2, 3]",
        encode(old_new(BOB, "b1", bid[0] * 95 // 100, 2**62)),
        encode(old_new(ALICE, "a1", bid[0] * 95 // 100, 1000)),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(log.topic, r, partition=0)
    finally:
        await producer.stop()
    before = (refused_count("malformed"), refused_count("size_limit"))
    again = KafkaLog(cfg)
    await again.open()
    await again.aclose()
    assert [c[0] for c in again.recovered] == ["sim", "sim", "new", "new"]
    assert refused_count("malformed") - before[0] == 2
    fresh, _ = venue(warm=0)
    outcomes = list(replayed(fresh, again, again.path))
    assert len(outcomes) == 4 and refused_count("size_limit") - before[1] == 1
    assert {o.cl_ord_id: o.order_id for o in fresh.orders.values()} == {
        "b1": FIRST_ID,
        "a1": FIRST_ID + 1,
    }
    sane(fresh)


async def test_a_kafka_log_of_the_old_format_is_refused_naming_the_topic(
    services: dict[str, str], unique: str
) -> None:
    """A topic written before issue 15 (JSON objects) is not this venue's to read."""
    from aiokafka import AIOKafkaProducer

    from hub.config import KafkaConfig
    from trading.journal import JournalError
    from trading.kafka_log import KafkaLog

    cfg = KafkaConfig(bootstrap=services["kafka"], topic_prefix=unique)
    log = KafkaLog(cfg)
    await log.open()  # creates the topic
    await log.aclose()
    producer = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap, acks="all")
    await producer.start()
    try:
        old = {"k": "sim", "s": "BTC-USD", "n": 3, "ts": 1}
        await producer.send_and_wait(log.topic, orjson.dumps(old), partition=0)
    finally:
        await producer.stop()
    again = KafkaLog(cfg)
    with pytest.raises(JournalError, match=f"order log kafka:{log.topic} is in the order log"):
        await again.open()
    await again.aclose()


def test_a_checkpoint_holding_an_overflowed_level_restores_without_it() -> None:
    """A checkpoint an unbounded venue wrote with both 2**62 orders on one level: the
    second is left out of the book and reported cancelled (replay_refused); the rest is
    restored exactly and the venue goes on."""
    from trading.replay import restore

    v, _log = venue(OFF, warm=50)
    run_ok = v.check(ALICE, new("c1", price="0.01", qty="46116860184273.87904"), 5)
    assert isinstance(run_ok, New)
    v.apply(run_ok)
    saved = orjson.loads(orjson.dumps(v.snapshot()))
    level = next(lvl for lvl in saved["exchanges"]["BTC-USD"]["engine"]["book"] if lvl[1] == 1)
    twin = list(level[2][0])
    twin[0], twin[1] = FIRST_ID + 1, BOB  # order id, account: bob's order on the same level
    level[2].append(twin)
    saved["orders"].append([BOB, "c2", "BTC-USD", FIRST_ID + 1, 0, 0, 1, 2**62, 2**62, 0, True])
    saved["accounts"][str(BOB)]["open"].append(FIRST_ID + 1)
    saved["next_order_id"] = FIRST_ID + 2
    before = refused_count("size_limit")
    fresh, _ = venue(OFF, warm=0)
    restore(fresh, saved, "test checkpoint")
    assert refused_count("size_limit") - before == 1
    assert (1, 2**62, 1) in fresh.exchanges["BTC-USD"].engine.depth(0)
    sane(fresh)
    bob = list(fresh.state[BOB].reports)
    assert [(r["order_id"], r["exec_type"], r["reason"]) for r in bob] == [
        (str(FIRST_ID + 1), "cancelled", "replay_refused")
    ]
    assert fresh.state[BOB].open_orders == {} and not fresh.orders[FIRST_ID + 1].open
    assert fresh.state[ALICE].open_orders.keys() == v.state[ALICE].open_orders.keys()
    nxt = fresh.check(ALICE, new("c3", price="64000.00"), 9)  # and it goes on
    assert isinstance(nxt, New)
    assert fresh.apply(nxt).reports[0][1]["order_id"] == str(FIRST_ID + 2)
