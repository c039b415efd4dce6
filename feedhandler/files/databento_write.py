"""Databento MBO files written from what the matching engine really did (CSV and DBN), for
``hub sample`` and the tests (which import it as ``testing.databento``)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import databento_dbn as dbn
import zstandard

from feedhandler.files.databento import MboRecord
from orderbook_core import MatchingEngine
from orderbook_core.engine_types import OrderType, TradeEvent

COLUMNS = [
    "ts_recv",
    "ts_event",
    "rtype",
    "publisher_id",
    "instrument_id",
    "action",
    "side",
    "price",
    "size",
    "channel_id",
    "order_id",
    "flags",
    "ts_in_delta",
    "sequence",
]


SCALE = 10**7  # engine ticks of 1/100 -> Databento 1e-9 fixed point


def session(
    seed: int, commands: int, instrument_id: int = 42
) -> tuple[list[list[MboRecord]], list[tuple[object, object]]]:
    """Run the engine; return MBO records per command and the engine's book after each."""
    rng = random.Random(seed)
    engine = MatchingEngine()
    events_out: list[list[MboRecord]] = []
    books: list[tuple[object, object]] = []
    seq = 0
    live: list[int] = []

    def rec(action: str, side: int | None, price: int, size: int, oid: int) -> MboRecord:
        nonlocal seq
        seq += 1
        return MboRecord(
            seq * 1000,
            seq * 1000,
            instrument_id,
            action,
            "N" if side is None else ("B" if side == 0 else "A"),
            price * SCALE,
            size,
            oid,
            0,
            seq,
        )

    for oid in range(1, commands + 1):
        records: list[MboRecord] = []
        if live and rng.random() < 0.25:
            victim = live.pop(rng.randrange(len(live)))
            order = engine.order(victim)
            if order is None:
                continue
            engine.cancel(victim, 1)
            records.append(rec("C", order.side, order.price, order.leaves, victim))
        else:
            side = rng.randrange(2)
            price = 10_000 + rng.randrange(1, 20) * (-1 if side == 0 else 1)
            if rng.random() < 0.15:
                price = 10_000 + 6 * (1 if side == 0 else -1)
            before = {o: engine.order(o) for o in live}
            events = engine.new_order(oid, 1, side, OrderType.LIMIT, price, rng.randrange(1, 50))
            for e in (e for e in events if isinstance(e, TradeEvent)):
                px, qty, aggressor, maker = e.price, e.qty, e.aggressor_side, e.maker_order_id
                records.append(rec("T", aggressor, px, qty, oid))
                records.append(rec("F", 1 - aggressor, px, qty, maker))
                after = engine.order(maker)
                if after is None:
                    records.append(rec("C", 1 - aggressor, px, qty, maker))
                    live.remove(maker)
                else:
                    records.append(rec("M", 1 - aggressor, px, after.leaves, maker))
            assert before is not None
            resting = engine.order(oid)
            if resting is not None:
                records.append(rec("A", side, price, resting.leaves, oid))
                live.append(oid)
        if not records:
            continue
        last = records[-1]
        records[-1] = MboRecord(
            last.ts_recv,
            last.ts_event,
            last.instrument_id,
            last.action,
            last.side,
            last.price,
            last.size,
            last.order_id,
            128,
            last.sequence,
        )
        events_out.append(records)
        books.append(
            (
                [(p * SCALE, s, n) for p, s, n in engine.depth(0)],
                [(p * SCALE, s, n) for p, s, n in engine.depth(1)],
            )
        )
    return events_out, books


def write_csv(path: Path, batches: list[list[MboRecord]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in (r for b in batches for r in b):
            w.writerow(
                [
                    r.ts_recv,
                    r.ts_event,
                    160,
                    1,
                    r.instrument_id,
                    r.action,
                    r.side,
                    r.price,
                    r.size,
                    0,
                    r.order_id,
                    r.flags,
                    0,
                    r.sequence,
                ]
            )


def dbn_header() -> bytes:
    """The metadata header of a one-symbol MBO file, as a DBN file starts."""
    return bytes(
        dbn.Metadata(
            dataset="TEST.MBO",
            schema=dbn.Schema.from_str("mbo"),
            start=0,
            stype_in=dbn.SType.from_str("raw_symbol"),
            stype_out=dbn.SType.from_str("instrument_id"),
            end=0,
            symbols=["TEST"],
            partial=[],
            not_found=[],
            mappings=[],
        ).encode()
    )


def write_dbn(path: Path, batches: list[list[MboRecord]]) -> None:
    data = dbn_header()
    for r in (r for b in batches for r in b):
        data += bytes(
            dbn.MBOMsg(
                publisher_id=1,
                instrument_id=r.instrument_id,
                ts_event=r.ts_event,
                order_id=r.order_id,
                price=r.price,
                size=r.size,
                action=dbn.Action.from_str(r.action),
                side=dbn.Side.from_str(r.side),
                ts_recv=r.ts_recv,
                flags=r.flags,
                sequence=r.sequence,
            )
        )
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
