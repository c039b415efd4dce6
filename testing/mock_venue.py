"""Local stand-ins for venues, on 127.0.0.1, for tests and demos of the live runner.

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
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from feedhandler.files.capture import read_capture
from feedhandler.venues.kraken import KrakenParser, checksum
from feedhandler.venues.kucoin import BULLET
from hub.ops import response


class _MockVenue:
    """What both mock venues share: the server on 127.0.0.1 and the mid-stream drop."""

    drop_after: int | None
    skip_while_away: int
    done: asyncio.Event
    _server: Server | None = None

    def _advance(self) -> object:
        raise NotImplementedError

    def _process_request(self, _conn: ServerConnection, _request: Request) -> Response | None:
        return None

    async def _maybe_drop(self, ws: ServerConnection, connection: int, sent: int) -> bool:
        """On the first connection, after ``drop_after`` frames: let ``skip_while_away``
        updates pass unseen, then drop the connection. True if it dropped."""
        if connection != 1 or self.drop_after is None or sent < self.drop_after:
            return False
        for _ in range(self.skip_while_away):
            self._advance()  # the venue moves on while the client is away
        await ws.close(1011, "mock venue dropped the connection")
        return True

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    async def start(self) -> int:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request
        )
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class MockKrakenV2(_MockVenue):
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

    @property
    def finished(self) -> bool:
        return self.position >= len(self._updates)

    def _advance(self) -> str:
        if self.finished:
            return ""
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
            if await self._maybe_drop(ws, self.connections, sent):
                return
        self.done.set()
        await ws.wait_closed()


class MockBinance(_MockVenue):
    """A Binance-shaped venue whose book is the simulated exchange's matching engine.

    Streams ``depthUpdate`` diffs (U/u = the engine's update ids, several updates
    merged per frame) on ``/stream``, answers ``/api/v3/exchangeInfo`` and
    ``/api/v3/depth`` from the engine's current book, and can drop one diff
    silently (a gap for the client) or the whole first connection.
    """

    def __init__(
        self,
        symbol: str = "BTC-USD",
        seed: int = 5,
        frames: int = 400,
        steps_per_frame: int = 3,
        lose_frame: int | None = None,
        drop_after: int | None = None,
        skip_while_away: int = 0,
    ) -> None:
        from trading.simulator import SimulatedExchange

        self.symbol = symbol
        self.raw = symbol.replace("-", "")
        self.sim = SimulatedExchange("BINANCE", symbol, seed)
        for _ in range(200):  # a book with depth before anyone connects
            self.sim.step(0)
        self.frames_total = frames
        self.steps_per_frame = steps_per_frame
        self.lose_frame = lose_frame
        self.drop_after = drop_after
        self.skip_while_away = skip_while_away
        self.sent = 0
        self.connections = 0
        self.rest_requests = 0
        self.done = asyncio.Event()

    def _decimals(self, unit: str) -> int:
        return len(unit.split(".")[1]) if "." in unit else 0

    def truth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return (
            [(p, s) for p, s, _n in self.sim.engine.depth(0)],
            [(p, s) for p, s, _n in self.sim.engine.depth(1)],
        )

    def _frame(self) -> str:
        from hub.events import BookUpdate

        first = self.sim.book_seq + 1
        merged: dict[tuple[int, int], int] = {}
        while not merged:
            for _ in range(self.steps_per_frame):
                for event in self.sim.step(0):
                    if isinstance(event, BookUpdate):
                        for side, price, size in event.changes:
                            merged[side, price] = size
        inst = self.sim.instrument
        bids = [
            [inst.tick.to_str(p), inst.lot.to_str(s)]
            for (side, p), s in merged.items()
            if side == 0
        ]
        asks = [
            [inst.tick.to_str(p), inst.lot.to_str(s)]
            for (side, p), s in merged.items()
            if side == 1
        ]
        data = {
            "e": "depthUpdate",
            "E": 1,
            "s": self.raw,
            "U": first,
            "u": self.sim.book_seq,
            "b": bids,
            "a": asks,
        }
        return json.dumps({"stream": f"{self.raw.lower()}@depth@100ms", "data": data})

    def _rest(self, path: str) -> str:
        inst = self.sim.instrument
        if path.startswith("/api/v3/exchangeInfo"):
            base, quote = self.symbol.split("-")
            return json.dumps(
                {
                    "symbols": [
                        {
                            "symbol": self.raw,
                            "baseAsset": base,
                            "quoteAsset": quote,
                            "baseAssetPrecision": self._decimals(inst.lot_size),
                            "quoteAssetPrecision": self._decimals(inst.tick_size),
                            "filters": [
                                {"filterType": "PRICE_FILTER", "tickSize": inst.tick_size},
                                {"filterType": "LOT_SIZE", "stepSize": inst.lot_size},
                            ],
                        }
                    ]
                }
            )
        bids, asks = self.truth()
        return json.dumps(
            {
                "lastUpdateId": self.sim.book_seq,
                "bids": [[inst.tick.to_str(p), inst.lot.to_str(s)] for p, s in bids],
                "asks": [[inst.tick.to_str(p), inst.lot.to_str(s)] for p, s in asks],
            }
        )

    def _process_request(self, _conn: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/stream"):
            return None
        self.rest_requests += 1
        body = self._rest(request.path).encode()
        return response(200, body, "application/json")

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        connection = self.connections
        sent_here = 0
        while self.sent < self.frames_total:
            frame = self._frame()
            self.sent += 1
            sent_here += 1
            if self.sent != self.lose_frame:
                await ws.send(frame)
            await asyncio.sleep(0.001)
            if await self._maybe_drop(ws, connection, sent_here):
                return
        self.done.set()
        await ws.wait_closed()


class MockCaptureVenue(_MockVenue):
    """Plays a capture's first WebSocket connection to whoever connects, after their first
    message (the subscribe), and answers REST requests with the capture's REST bodies
    (matched by path and query). Each connection gets the recording from the start.

    With ``hold_after``, the first connection pauses after that many frames (``held`` is
    set while it waits) until ``allow`` lets it go on: a test can subscribe downstream
    meanwhile and see the rest of the recording arrive live.

    With ``tokens`` it is a venue whose connections need a token, as KuCoin's: REST moves
    to its own HTTP server (``rest_port``; the WebSocket server takes only GET), which
    also answers ``POST /api/v1/bullet-public`` with a fresh token, this server's address
    and ``ping_interval_ms``; a WebSocket upgrade without a token it issued is refused
    with 401 (``refused``), and each token is good for one connection."""

    def __init__(
        self,
        capture: Path,
        pace: float = 0.0,
        hold_after: int | None = None,
        tokens: bool = False,
        ping_interval_ms: int = 18_000,
    ) -> None:
        lines = list(read_capture(capture))
        first = next((x.conn for x in lines if x.kind == "recv"), "")
        self.frames: list[str | bytes] = [  # binary frames (Huobi gzip) as sent
            x.raw or x.data for x in lines if x.kind == "recv" and x.conn == first
        ]
        self.waits_for_subscribe = any(x.kind == "send" for x in lines)
        self.rest: dict[str, str] = {}
        for x in lines:
            if x.kind == "http":
                parsed = urlsplit(x.url)
                self.rest[parsed.path + ("?" + parsed.query if parsed.query else "")] = x.data
        self.pace = pace
        self.hold_after = hold_after
        self.held = asyncio.Event()
        self._more = asyncio.Event()
        self.received: list[str] = []
        self.rest_requests: list[str] = []
        self.connections = 0
        self.drop_after = None
        self.skip_while_away = 0
        self.done = asyncio.Event()
        self.tokens = tokens
        self.ping_interval_ms = ping_interval_ms
        self.issued: set[str] = set()
        """Tokens handed out and not used yet (each is good for one connection)."""
        self.tokens_issued = 0
        self.refused = 0
        self.port = 0
        self.rest_port = 0
        self._rest_runner: web.AppRunner | None = None

    def _advance(self) -> object:
        return None

    async def start(self) -> int:
        self.port = await super().start()
        if self.tokens:
            app = web.Application()
            app.router.add_post(BULLET, self._bullet)
            app.router.add_get("/{path:.*}", self._rest_get)
            self._rest_runner = web.AppRunner(app, access_log=None)
            await self._rest_runner.setup()
            site = web.TCPSite(self._rest_runner, "127.0.0.1", 0)
            await site.start()
            self.rest_port = self._rest_runner.addresses[0][1]
        else:
            self.rest_port = self.port
        return self.port

    async def stop(self) -> None:
        if self._rest_runner is not None:
            await self._rest_runner.cleanup()
        await super().stop()

    async def _bullet(self, _request: web.Request) -> web.Response:
        self.tokens_issued += 1
        token = f"token-{self.tokens_issued}"
        self.issued.add(token)
        server = {
            "endpoint": f"ws://127.0.0.1:{self.port}/",
            "encrypt": False,
            "protocol": "websocket",
            "pingInterval": self.ping_interval_ms,
            "pingTimeout": 10_000,
        }
        data = {"token": token, "instanceServers": [server]}
        return web.json_response({"code": "200000", "data": data})

    def _recorded(self, path: str) -> tuple[int, bytes]:
        """The capture's REST answer for ``path`` (path and query), or a 404."""
        self.rest_requests.append(path)
        body = self.rest.get(path)
        return (404, b'{"message":"not recorded"}') if body is None else (200, body.encode())

    async def _rest_get(self, request: web.Request) -> web.Response:
        status, body = self._recorded(request.path_qs)
        return web.Response(status=status, body=body, content_type="application/json")

    def allow(self, frames: int | None) -> None:
        """Let the first connection go on up to ``frames`` frames (None: to the end); call
        it on the venue's event loop."""
        self.hold_after = frames
        self.held.clear()
        self._more.set()

    def _process_request(self, _conn: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if not self.tokens:
                return None
            token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
            if token in self.issued:
                self.issued.discard(token)
                return None
            self.refused += 1
            return response(401, b'{"message":"token required"}', "application/json")
        return response(*self._recorded(request.path), "application/json")

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        connection = self.connections
        if self.waits_for_subscribe:
            self.received.append(str(await ws.recv()))
        for n, frame in enumerate(self.frames):
            while connection == 1 and self.hold_after is not None and n >= self.hold_after:
                self._more.clear()
                self.held.set()
                await self._more.wait()
            await ws.send(frame)
            await asyncio.sleep(self.pace)
        self.done.set()
        async for message in ws:
            self.received.append(str(message))
