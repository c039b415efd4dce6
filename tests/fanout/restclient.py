"""Plain HTTP/1.1 GETs over a real socket (the path goes out byte for byte, percent-encoding
kept), and a node with the harness's stream plus a Kraken-style one, for the REST tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from bus.local import MemorySnapshots
from fanout.node import FanoutNode
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument
from hub.ops import bound_port
from tests.fanout.harness import INST, OPEN, Market

KRAKEN = Instrument(
    "KRAKEN",
    "XBT/USD",
    "0.1",
    "0.00000001",
    canonical="BTC-USD",
    kind="spot",
    base="BTC",
    quote="USD",
)
EPOCH = 1_795_000_000_000_000_001
KRAKEN_TS = 1_795_000_000_123_456_789


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def get(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    """GET ``path`` from 127.0.0.1:``port``; the node closes the connection after answering."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    got: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        got[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), got, body)


async def rest_node(
    cfg: FanoutConfig = OPEN, dsn: str = "", bars_from_trades: bool = False
) -> tuple[FanoutNode, Market, int]:
    """A started node with SIM:X (the harness's random book) and KRAKEN:XBT/USD synced."""
    store = MemorySnapshots()
    node = FanoutNode(cfg, store, bars_from_trades, dsn)
    server = await node.start()
    market = Market(node)
    for inst in (INST, KRAKEN):
        await store.put_instrument(inst)
        node.on_event(inst)
    await store.put(market.snapshot())
    await store.put(
        BookSnapshot(
            "KRAKEN", "XBT/USD", 7, 5, ((650_000, 12), (649_999, 3)), ((650_001, 40),), None, EPOCH
        )
    )
    market.step()
    node.on_event(
        BookUpdate("KRAKEN", "XBT/USD", 8, KRAKEN_TS, KRAKEN_TS, ((1, 650_002, 1),), epoch=EPOCH)
    )
    for _ in range(300):
        if all(s.synced for s in node.streams.values()):
            break
        await asyncio.sleep(0.01)
    assert all(s.synced for s in node.streams.values())
    return node, market, bound_port(server)
