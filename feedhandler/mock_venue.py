"""A local stand-in for a venue: plays a recorded capture to WebSocket clients on 127.0.0.1.

``MockKrakenV2`` keeps the venue's true book by applying the capture's
updates as it streams them. Every subscription gets a fresh snapshot of that
book (with Kraken's checksum), then the following updates. It can drop a
connection after a number of frames and let the stream move on while the
client is away, so a client that reconnects must resync from the new
snapshot to end with the venue's book.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve

from feedhandler.capture import read_capture
from feedhandler.venues.kraken import KrakenParser, checksum


class MockKrakenV2:
    def __init__(
        self,
        capture: Path,
        drop_after: int | None = None,
        skip_while_away: int = 0,
        symbol: str = "BTC/USD",
    ) -> None:
        frames = [x.data for x in read_capture(capture) if x.kind == "recv"]
        self._snapshot, self._updates = frames[0], frames[1:]
        self.symbol = symbol
        self.truth = KrakenParser()
        self.truth.on_frame(self._snapshot, 0)
        self.position = 0  # next update to stream
        self.drop_after = drop_after
        self.skip_while_away = skip_while_away
        self.connections = 0
        self.done = asyncio.Event()
        self._server: Server | None = None

    @property
    def finished(self) -> bool:
        return self.position >= len(self._updates)

    def _advance(self) -> str:
        frame = self._updates[self.position]
        self.position += 1
        self.truth.on_frame(frame, 0)
        return frame

    def snapshot_frame(self) -> str:
        sync = self.truth.books[self.symbol]
        tick, lot = self.truth.units_for(self.symbol)
        bids, asks = sync.book.snapshot()

        def levels(rows: list[tuple[int, int]]) -> str:
            # JSON numbers, as Kraken v2 sends them.
            return ",".join(f'{{"price":{tick.to_str(p)},"qty":{lot.to_str(q)}}}' for p, q in rows)

        return (
            f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{self.symbol}",'
            f'"bids":[{levels(bids)}],"asks":[{levels(asks)}],'
            f'"checksum":{checksum(sync.book)}}}]}}'
        )

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        async for message in ws:
            request = json.loads(message)
            if request.get("params", {}).get("channel") == "book":
                break
        await ws.send(self.snapshot_frame())
        sent = 0
        while not self.finished:
            await ws.send(self._advance())
            sent += 1
            await asyncio.sleep(0)
            if self.connections == 1 and self.drop_after is not None and sent >= self.drop_after:
                for _ in range(min(self.skip_while_away, len(self._updates) - self.position)):
                    self._advance()  # the venue moves on while the client is away
                await ws.close(1011, "mock venue dropped the connection")
                return
        self.done.set()
        await ws.wait_closed()

    async def start(self) -> int:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
