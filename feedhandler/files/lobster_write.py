"""LOBSTER message + orderbook files written from what the matching engine really did:
submissions, partial cancellations (a replace to a smaller size), deletions, executions of
visible orders, and a few executions of hidden orders (type 5, which leave the book
alone). Used by ``hub sample`` and by the tests (through ``testing.lobster``)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from feedhandler.files.lobster import EMPTY_ASK, EMPTY_BID
from orderbook_core import MatchingEngine
from orderbook_core.engine_types import OrderType, TradeEvent

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


def file_names(symbol: str) -> tuple[str, str]:
    """LOBSTER's names of a symbol's message and orderbook files (a 2012-06-21 session)."""
    stem = f"{symbol}_2012-06-21_34200000_57600000"
    return f"{stem}_message_{LEVELS}.csv", f"{stem}_orderbook_{LEVELS}.csv"


def write_session(
    folder: Path, seed: int, commands: int, symbol: str = "TEST", partial: bool = False
) -> tuple[Path, Path, int]:
    """Run the engine; write what it did as LOBSTER message + orderbook files, and return
    them and the number of visible executions. ``partial`` adds partial cancellations and
    hidden executions (off by default: the files the tests pin stay as they were)."""
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
        if partial and live and rng.random() < 0.1:
            target = live[rng.randrange(len(live))]
            resting = engine.order(target)
            if resting is not None and resting.leaves > 100:
                cut = 100 * rng.randrange(1, resting.leaves // 100)
                engine.replace(target, 1, resting.price, resting.leaves - cut)
                emit(2, target, cut, resting.price, resting.side)
                continue
        if partial and rng.random() < 0.03:
            side = rng.randrange(2)
            emit(5, 0, 100, 1_500_000 + (100 if side else -100), side)
            continue
        if live and rng.random() < 0.3:
            victim = live.pop(rng.randrange(len(live)))
            resting = engine.order(victim)
            if resting is not None:
                side, price, leaves = resting.side, resting.price, resting.leaves
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
            if isinstance(e, TradeEvent):  # the resting maker order was executed
                trades += 1
                emit(4, e.maker_order_id, e.qty, e.price, 1 - e.aggressor_side)
        resting = engine.order(oid)
        if resting is not None:
            emit(1, oid, resting.leaves, price, side)
            live.append(oid)
        for s in (0, 1):  # the independent book must equal the engine's after every command
            assert [(p, q) for p, q, _n in engine.depth(s, LEVELS)] == sorted(
                ((p, q) for (sd, p), q in book.items() if sd == s and q > 0), reverse=(s == 0)
            )[:LEVELS]
    msg_name, book_name = file_names(symbol)
    msg_path, book_path = folder / msg_name, folder / book_name
    with msg_path.open("w", newline="") as f:
        csv.writer(f).writerows(messages)
    with book_path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return msg_path, book_path, trades
