"""LOBSTER replay, checked row by row against orderbook files generated from the matching engine."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest

from feedhandler.lobster import EMPTY_ASK, EMPTY_BID, LobsterError, replay_lobster
from hub.events import Trade
from orderbook_core import MatchingEngine
from orderbook_core.engine_types import OrderType
from tests.conftest import ROOT

LEVELS = 10


def top_rows(book: dict[tuple[int, int], int]) -> list[int]:
    """An independent rendering of the top levels (not the code under test)."""
    asks = sorted((p, s) for (side, p), s in book.items() if side == 1 and s > 0)[:LEVELS]
    bids = sorted(((p, s) for (side, p), s in book.items() if side == 0 and s > 0), reverse=True)[
        :LEVELS
    ]
    row: list[int] = []
    for i in range(LEVELS):
        row += list(asks[i]) if i < len(asks) else [EMPTY_ASK, 0]
        row += list(bids[i]) if i < len(bids) else [EMPTY_BID, 0]
    return row


def write_session(folder: Path, seed: int, commands: int) -> tuple[Path, Path, int]:
    """Run the engine; write what it did as LOBSTER message + orderbook files."""
    rng = random.Random(seed)
    engine = MatchingEngine()
    book: dict[tuple[int, int], int] = {}
    messages: list[list[str]] = []
    rows: list[list[int]] = []
    t = 34200.0
    trades = 0

    def emit(kind: int, oid: int, size: int, price: int, side: int) -> None:
        messages.append(
            [f"{t:.9f}", str(kind), str(oid), str(size), str(price), "1" if side == 0 else "-1"]
        )
        if kind == 1:
            book[side, price] = book.get((side, price), 0) + size
        elif kind in (2, 3, 4):
            book[side, price] -= size
        rows.append(top_rows(book))

    live: list[int] = []
    for oid in range(1, commands + 1):
        t += rng.random() / 100
        if live and rng.random() < 0.3:
            victim = live.pop(rng.randrange(len(live)))
            resting = engine.order(victim)
            if resting is not None:
                side, price, leaves = resting[2], resting[4], resting[6]
                engine.cancel(victim, 1)
                emit(3, victim, leaves, price, side)
            continue
        side = rng.randrange(2)
        price = 1_500_000 + (rng.randrange(1, 30) * 100) * (-1 if side == 0 else 1)
        if rng.random() < 0.1:
            price = 1_500_000 + 800 * (1 if side == 0 else -1)  # marketable
        size = 100 * rng.randrange(1, 10)
        events = engine.new_order(oid, 1, side, OrderType.LIMIT, price, size)
        for e in events:
            if e[0] == 2:  # trade: the resting maker order was executed
                trades += 1
                emit(4, e[5], e[3], e[2], 1 - e[4])
        resting = engine.order(oid)
        if resting is not None:
            emit(1, oid, resting[6], price, side)
            live.append(oid)
        for s in (0, 1):  # the independent book must equal the engine's after every command
            assert [(p, q) for p, q, _n in engine.depth(s, LEVELS)] == sorted(
                ((p, q) for (sd, p), q in book.items() if sd == s and q > 0), reverse=(s == 0)
            )[:LEVELS]
    msg_path = folder / "TEST_2012-06-21_34200000_57600000_message_10.csv"
    book_path = folder / "TEST_2012-06-21_34200000_57600000_orderbook_10.csv"
    with msg_path.open("w", newline="") as f:
        csv.writer(f).writerows(messages)
    with book_path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return msg_path, book_path, trades


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_matches_every_orderbook_row(tmp_path: Path, seed: int) -> None:
    msg, book, trades = write_session(tmp_path, seed, 1500)
    replay = replay_lobster(msg, book)
    assert replay.mismatches == 0
    assert replay.rows_checked == replay.messages - 1 > 1000
    assert replay.trades == trades > 0
    assert replay.symbol == "TEST"
    # 2012-06-21 00:00 in New York (EDT, UTC-4): 09:30:00 there is 13:30:00 UTC.
    assert replay.midnight_ns == (1340236800 + 4 * 3600) * 10**9


def test_a_wrong_message_is_caught_at_its_line(tmp_path: Path) -> None:
    msg, book, _ = write_session(tmp_path, 4, 400)
    rows = list(csv.reader(msg.open()))
    target = next(i for i, r in enumerate(rows) if i > 50 and r[1] == "1")
    rows[target][3] = str(int(rows[target][3]) + 100)  # the book file disagrees from here
    with msg.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    replay = replay_lobster(msg, book)
    assert replay.mismatches > 0 and replay.first_mismatch == target + 1


def test_trade_sides_halts_and_bad_rows(tmp_path: Path) -> None:
    msg = tmp_path / "X_2020-01-02_0_0_message_1.csv"
    msg.write_text(
        "34200.1,1,1,100,1000000,-1\n34200.2,4,1,40,1000000,-1\n"
        "34200.3,5,9,10,1000100,1\n34200.4,7,0,0,-1,-1\n"
    )
    replay = replay_lobster(msg, None)
    events_side = replay.summary()
    assert events_side["trades"] == 2 and events_side["halts"] == 1
    assert events_side["state"] == "halted"
    assert replay.book.depth(1) == [(1000000, 60)]
    bad = tmp_path / "Y_2020-01-02_0_0_message_1.csv"
    bad.write_text("34200.1,1,1,100,1000000,-1\n34200.2,3,1,500,1000000,-1\n")
    with pytest.raises(LobsterError, match=r"line 2: removes 500 from a level of 100"):
        replay_lobster(bad, None)


def test_executions_carry_the_aggressor_side() -> None:
    from feedhandler.lobster import LobsterReplay

    replay = LobsterReplay("X")
    replay.apply(["1.4", "1", "7", "30", "500", "-1"], "row 1")
    trade, _update = replay.apply(["1.5", "4", "7", "10", "500", "-1"], "row 2")
    assert isinstance(trade, Trade)
    assert trade.side == 0  # a sell limit order was hit: buyer-initiated
    assert trade.ts_event == 1_500_000_000


def test_hub_replay_lobster_command(tmp_path: Path) -> None:
    msg, book, _ = write_session(tmp_path, 5, 300)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "replay",
            "lobster",
            str(msg),
            "--orderbook",
            str(book),
            "--check",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert '"mismatches": 0' in out.stdout
