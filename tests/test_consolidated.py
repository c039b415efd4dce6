"""End to end: two real captures that list BTC-USD (Coinbase ``BTC-USD``, Kraken ``XBT/USD``)
replayed together onto one bus, the consolidator merging them and a fanout node serving
the ``consolidated`` channel over real WebSocket connections. A client that follows the
deltas and one that subscribes at the end both hold exactly the merge of the two final
venue books (from the feeds' own stored snapshots, in decimals), with the NBBO and the venues'
states; a client resuming from an earlier seq is replayed the rest."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from app.launch import build_source
from bus.consolidate import CONSOLIDATED
from bus.consolidator import Consolidator
from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput
from fanout.node import FanoutNode
from fanout.sources import bus_source
from hub.config import FanoutConfig, FeedConfig
from hub.ops import bound_port
from orderbook_core import L2Book
from tests.conftest import CAPTURES

COINBASE = CAPTURES / "coinbase-advanced-trade_BTC-USD_ETH-USD_2026-08-09.jsonl.zst"
KRAKEN = CAPTURES / "kraken-v1-book10_XBT-USD_2023-08-30.jsonl.zst"
STREAMS = (("COINBASE", "BTC-USD"), ("KRAKEN", "XBT/USD"))
UNIT = Decimal("0.00000001")
"""The consolidated stream's tick and lot (both venues fit 10**-8)."""

Merged = dict[tuple[int, Decimal], dict[str, Decimal]]
"""(side, price) -> {venue: size}, in decimals."""


class Mirror:
    """A client's consolidated book, kept by the protocol's rules from its messages."""

    def __init__(self) -> None:
        self.levels: Merged = {}
        self.totals: dict[tuple[int, Decimal], Decimal] = {}
        self.epoch = 0
        self.seq = -1
        self.venues: list[dict[str, str]] = []
        self.nbbo: dict[str, Any] = {}
        self.deltas = 0
        self.verified = 0
        self.units = L2Book()
        """The summed book in integer units, for checksums."""
        self.mark = -1
        """Keep a copy of the book as at this seq (``marked``)."""
        self.marked: tuple[Merged, dict[tuple[int, Decimal], Decimal], L2Book] | None = None

    def _set(self, side: int, level: list[Any]) -> None:
        price, total, per_venue = Decimal(level[0]), Decimal(level[1]), level[2]
        assert sum((Decimal(z) for z in per_venue.values()), Decimal(0)) == total
        self.units.apply([(side, int(price / UNIT), int(total / UNIT))])
        if total:
            self.levels[side, price] = {v: Decimal(z) for v, z in per_venue.items()}
            self.totals[side, price] = total
        else:
            assert per_venue == {}
            self.levels.pop((side, price), None)
            self.totals.pop((side, price), None)

    def checksum(self) -> int:
        """CRC-32 of the top 10 levels in integer units (the stream's tick and lot: 1e-8)."""
        return self.units.checksum(10)

    def take(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "snapshot":
            assert msg["channel"] == "consolidated" and msg["venue"] == CONSOLIDATED
            self.levels, self.totals, self.units = {}, {}, L2Book()
            self.epoch, self.seq = msg["epoch"], msg["seq"]
            for side, key in ((0, "bids"), (1, "asks")):
                for level in msg[key]:
                    self._set(side, level)
            self.venues, self.nbbo = msg["venues"], msg["nbbo"]
        elif kind == "consolidated":
            if msg["epoch"] != self.epoch or msg["seq"] <= self.seq:
                return
            assert msg["first"] <= self.seq + 1, f"missed {self.seq + 1}..{msg['first'] - 1}"
            for side, key in ((0, "bids"), (1, "asks")):
                for level in msg[key]:
                    self._set(side, level)
            self.seq = msg["seq"]
            self.venues, self.nbbo = msg["venues"], msg["nbbo"]
            self.deltas += 1
            if "checksum" in msg:  # the source's, of the summed top 10 in the stream's units
                assert self.checksum() == msg["checksum"], f"checksum at seq {self.seq}"
                self.verified += 1
            if self.seq == self.mark:
                units = L2Book()
                units.apply(
                    [(s, int(p / UNIT), int(z / UNIT)) for (s, p), z in self.totals.items()]
                )
                self.marked = (dict(self.levels), dict(self.totals), units)
        elif kind == "venues":
            self.venues = msg["venues"]


def expected_merge(books: dict[tuple[str, str], Any], units: dict[str, Any]) -> Merged:
    out: Merged = {}
    for (venue, symbol), snap in books.items():
        inst = units[venue]
        tick, lot = Decimal(inst.tick_size), Decimal(inst.lot_size)
        for side, levels in ((0, snap.bids), (1, snap.asks)):
            for price, size in levels:
                out.setdefault((side, price * tick), {})[venue] = size * lot
        assert inst.symbol == symbol
    return out


async def read_until(ws: ClientConnection, mirror: Mirror, done: Any, wait: float = 30) -> None:
    async def read() -> None:
        while not done():
            for msg in orjson.loads(await ws.recv()):
                mirror.take(msg)

    await asyncio.wait_for(read(), wait)


async def subscribe(
    url: str, extra: dict[str, Any] | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url, max_size=None, ping_interval=None)
    welcome = orjson.loads(await ws.recv())
    assert welcome[0]["type"] == "welcome"
    entry = {"channel": "consolidated", "symbol": "btc-usd", **(extra or {})}
    await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "channels": [entry]}).decode())
    return ws, entry


async def test_two_captures_replayed_together_give_the_merge_of_their_final_books() -> None:
    bus, store = InProcessBus(), MemorySnapshots()
    feeds = [
        build_source(FeedConfig(source="capture", file=str(path), speed="max"), bus, store)
        for path in (COINBASE, KRAKEN)
    ]
    consolidator = Consolidator(FeedOutput(bus, store), store, ["BTC-USD"])
    node = FanoutNode(FanoutConfig(port=0, anonymous=True, flush_ms=2), store)
    server = await node.start()
    url = f"ws://127.0.0.1:{bound_port(server)}/ws"
    tasks = [
        asyncio.create_task(bus_source(node, bus)),
        asyncio.create_task(consolidator.run_bus(bus)),
    ]
    await asyncio.sleep(0)  # both consumers are on the bus before the first event
    tasks.append(asyncio.create_task(feeds[0].run()))  # Coinbase first, Kraken once followed
    key = (CONSOLIDATED, "BTC-USD")
    try:
        for _ in range(3000):  # the stream is served once the node has synced it
            stream = node.streams.get(key)
            if stream is not None and stream.synced and stream.members is not None:
                break
            await asyncio.sleep(0.01)
        assert stream is not None and stream.synced
        follower, _entry = await subscribe(url)
        early = Mirror()
        answer = orjson.loads(await follower.recv())
        assert answer[0]["accepted"] == [
            {"channel": "consolidated", "venue": CONSOLIDATED, "symbol": "BTC-USD"}
        ]
        for msg in answer[1:]:
            early.take(msg)
        tasks.append(asyncio.create_task(feeds[1].run()))

        for _ in range(6000):  # both replays end, and everything reached the node
            finished = all(f.health()["finished"] for f in feeds)
            states = [s for _v, _s, s in stream.members.members] if stream.members else []
            caught_up = stream.seq == consolidator.seqs["BTC-USD"] and not consolidator.pending
            stored = [await store.get(*k) for k in STREAMS]  # the feeds' final books
            kept = all(
                s is not None and (held := node.streams.get(k)) is not None and s.seq == held.seq
                for s, k in zip(stored, STREAMS, strict=True)
            )
            if finished and states == ["closed", "closed"] and caught_up and kept:
                break
            await asyncio.sleep(0.01)
        final_seq = consolidator.seqs["BTC-USD"]
        early.mark = final_seq - 5
        closed = ["closed", "closed"]
        await read_until(
            follower,
            early,
            lambda: early.seq == final_seq and [v["state"] for v in early.venues] == closed,
        )

        books = {k: await store.get(*k) for k in STREAMS}
        units = {i.venue: i for i in await store.instruments() if (i.venue, i.symbol) in STREAMS}
        assert all(b is not None and b.bids and b.asks for b in books.values())
        want = expected_merge(books, units)
        assert {v for cell in want.values() for v in cell} == {"COINBASE", "KRAKEN"}

        late, _ = await subscribe(url)
        fresh = Mirror()
        await read_until(late, fresh, lambda: fresh.seq >= 0)
        for mirror in (early, fresh):
            assert mirror.seq == final_seq
            assert mirror.levels == want
            assert [v["state"] for v in mirror.venues] == ["closed", "closed"]
            assert {v["venue"]: v["symbol"] for v in mirror.venues} == dict(STREAMS)
        assert early.deltas > 100  # it followed deltas, not just one snapshot
        assert early.verified == early.deltas  # each carried the source checksum, verified

        # the NBBO: best prices across both venues, with every venue quoting them
        bid = max(p for s, p in want if s == 0)
        ask = min(p for s, p in want if s == 1)
        nbbo = fresh.nbbo
        assert Decimal(nbbo["bid"][0]) == bid and Decimal(nbbo["ask"][0]) == ask
        assert Decimal(nbbo["bid"][1]) == sum(want[0, bid].values())
        assert sorted(nbbo["bid"][2]) == sorted(want[0, bid])
        assert sorted(nbbo["ask"][2]) == sorted(want[1, ask])
        assert nbbo["crossed"] == (bid >= ask)

        # a client back from an earlier seq of this epoch is replayed what it missed
        resumed, _ = await subscribe(url, {"resume_from": final_seq - 5, "epoch": early.epoch})
        answer = orjson.loads(await resumed.recv())
        assert answer[0]["accepted"][0]["resume"] == "replayed"
        assert answer[0]["accepted"][0]["replayed"] >= 1
        assert early.marked is not None  # the book the client held at final_seq - 5
        again = Mirror()
        again.levels, again.totals, again.units = early.marked
        again.epoch, again.seq = early.epoch, final_seq - 5
        for msg in answer[1:]:
            again.take(msg)
        await read_until(resumed, again, lambda: again.seq == final_seq)
        assert again.levels == want
        for ws in (follower, late, resumed):
            await ws.close()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await node.stop()
