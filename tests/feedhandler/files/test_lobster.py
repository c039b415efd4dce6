"""LOBSTER replay, checked row by row against orderbook files generated from the matching engine."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from feedhandler.files.lobster import LobsterError, replay_lobster
from hub.events import Trade
from testing.lobster import write_session
from tests.conftest import ROOT


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
    from feedhandler.files.lobster import LobsterReplay

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
            "app.cli",
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
