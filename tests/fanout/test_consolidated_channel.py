"""The ``consolidated`` channel over a real socket: a venue going stale leaves the book in one
delta and is shown stale, then comes back whole; ``list`` and subscription resolution keep the
consolidated stream apart from the venues' own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bus.consolidate import CONSOLIDATED
from bus.consolidator import Consolidator
from bus.local import MemorySnapshots
from bus.output import FeedOutput
from fanout.node import FanoutNode
from hub.events import BookUpdate, Event, Instrument, Status
from hub.ops import bound_port
from tests.fanout.harness import OPEN

COINBASE = Instrument("COINBASE", "BTC-USD", "0.01", "0.00000001", "BTC-USD", "spot", "BTC", "USD")
KRAKEN = Instrument("KRAKEN", "XBT/USD", "0.1", "0.0001", "BTC-USD", "spot", "BTC", "USD")


class ToNode:
    """The bus between the consolidator and the node: events straight in, in order."""

    def __init__(self, node: FanoutNode) -> None:
        self.node = node

    async def publish(self, events: Sequence[Event]) -> None:
        for e in events:
            self.node.on_event(e)


async def messages(ws: ClientConnection, want: int, wait: float = 5) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    async def read() -> None:
        while len(out) < want:
            out.extend(orjson.loads(await ws.recv()))

    await asyncio.wait_for(read(), wait)
    return out


async def next_delta(ws: ClientConnection, wait: float = 5) -> dict[str, Any]:
    """The next ``consolidated`` delta (status and other messages on the way passed over)."""

    async def read() -> dict[str, Any]:
        while True:
            batch: list[dict[str, Any]] = orjson.loads(await ws.recv())
            for msg in batch:
                if msg["type"] == "consolidated":
                    return msg

    return await asyncio.wait_for(read(), wait)


async def test_a_stale_venue_is_shown_and_left_out_then_comes_back() -> None:
    store = MemorySnapshots()
    node = FanoutNode(OPEN, store)
    server = await node.start()
    output = FeedOutput(ToNode(node), store)
    cons = Consolidator(output, store)

    async def venue(*events: Event) -> None:
        for e in events:
            node.on_event(e)
            cons.on_event(e)
        await cons.flush()

    await venue(COINBASE, KRAKEN)
    await venue(
        BookUpdate("COINBASE", "BTC-USD", 1, 5, 6, ((0, 6_500_000, 100), (1, 6_500_100, 7)))
    )
    await venue(BookUpdate("KRAKEN", "XBT/USD", 1, 5, 6, ((0, 650_000, 3), (1, 650_020, 2))))
    await output.store_snapshots()
    for _ in range(300):
        if node.streams[CONSOLIDATED, "BTC-USD"].synced:
            break
        await asyncio.sleep(0.01)
    ws = await connect(f"ws://127.0.0.1:{bound_port(server)}/ws")
    try:
        await messages(ws, 1)  # welcome
        await ws.send(orjson.dumps({"op": "list", "id": 0}).decode())
        listed = {(s["venue"], s["symbol"]): s for s in (await messages(ws, 1))[0]["streams"]}
        assert listed[CONSOLIDATED, "BTC-USD"]["channels"] == ["consolidated"]
        assert listed[CONSOLIDATED, "BTC-USD"]["tick_size"] == "0.00000001"
        assert "consolidated" not in listed["COINBASE", "BTC-USD"]["channels"]
        request = {
            "op": "subscribe",
            "id": 1,
            "channels": [
                {"channel": "consolidated", "symbol": "Btc-Usd"},
                # Kraken's XBT/USD is BTC-USD too: a venue book names its venue
                {"channel": "book", "venue": "coinbase", "symbol": "BTC-USD"},
                {"channel": "consolidated", "symbol": "DOGE-USD"},
            ],
        }
        await ws.send(orjson.dumps(request).decode())
        got = await messages(ws, 3)
        answer = got[0]
        assert [a["venue"] for a in answer["accepted"]] == [CONSOLIDATED, "COINBASE"]
        assert answer["refused"][0]["code"] == "unknown_symbol"
        snap = next(m for m in got if m.get("channel") == "consolidated")
        assert snap["seq"] == 2 and snap["reason"] == "subscribe"
        assert snap["bids"] == [
            ["65000.00000000", "0.00030100", {"COINBASE": "0.00000100", "KRAKEN": "0.00030000"}]
        ]
        assert snap["nbbo"]["bid"] == ["65000.00000000", "0.00030100", ["COINBASE", "KRAKEN"]]
        assert snap["nbbo"]["ask"] == ["65001.00000000", "0.00000007", ["COINBASE"]]
        assert [v["state"] for v in snap["venues"]] == ["live", "live"]

        await venue(Status("KRAKEN", "XBT/USD", "stale", "gap", 7, 8))
        delta = await next_delta(ws)
        assert (delta["first"], delta["seq"], delta["epoch"]) == (3, 3, snap["epoch"])
        assert sorted(delta["bids"] + delta["asks"]) == [
            ["65000.00000000", "0.00000100", {"COINBASE": "0.00000100"}],
            ["65002.00000000", "0.00000000", {}],
        ]
        assert {v["venue"]: v["state"] for v in delta["venues"]} == {
            "COINBASE": "live",
            "KRAKEN": "stale",
        }
        assert delta["nbbo"]["bid"][2] == ["COINBASE"]

        await venue(BookUpdate("KRAKEN", "XBT/USD", 2, 9, 9, ((0, 650_000, 0), (0, 649_990, 4))))
        await venue(Status("KRAKEN", "XBT/USD", "resynced", "snapshot", 9, 9))
        delta = await next_delta(ws)
        assert delta["seq"] == 4
        assert delta["bids"] == [["64999.00000000", "0.00040000", {"KRAKEN": "0.00040000"}]]
        assert delta["asks"] == [["65002.00000000", "0.00020000", {"KRAKEN": "0.00020000"}]]
        assert [v["state"] for v in delta["venues"]] == ["live", "live"]
    finally:
        await ws.close()
        await node.stop()
