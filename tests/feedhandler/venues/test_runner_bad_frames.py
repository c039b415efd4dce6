"""The live runner against a mock Kraken that sends mutated frames from the real capture
over a real WebSocket: the connection and the feed carry on, the damaged book resyncs
from a fresh snapshot, and both the parser's book and the one rebuilt downstream from the
published updates end equal to the venue's."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from feedhandler.venues.kraken import KrakenParser
from feedhandler.venues.runner import LiveRunner
from hub.backoff import Backoff
from testing.mock_venue import MockKrakenV2
from tests.feedhandler.venues.test_live_runner import CAPTURE, Mirror, until_venue_done

SYMBOL = "BTC/USD"


class HostileKraken(MockKrakenV2):
    """Sends ``corrupt[i]`` in place of update ``i`` (its true book still applies the real
    one) and answers every book resubscription with a fresh snapshot, as Kraken does (sent
    between two updates, so it is exactly the book the next update follows)."""

    def __init__(self, corrupt: dict[int, str | bytes]) -> None:
        super().__init__(CAPTURE)
        self.corrupt = corrupt
        self.resubscribed = 0
        self._asked = 0

    async def _answer(self, ws: ServerConnection) -> None:
        async for message in ws:
            request = json.loads(message)
            params = request.get("params", {})
            if request.get("method") == "subscribe" and params.get("channel") == "book":
                self._asked += 1

    async def _resend(self, ws: ServerConnection) -> None:
        """Answer one pending book resubscription with a fresh snapshot."""
        if self._asked:
            self._asked -= 1
            self.resubscribed += 1
            await ws.send(self.snapshot_frame())

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        async for message in ws:
            if json.loads(message).get("params", {}).get("channel") == "book":
                break
        await ws.send(self.snapshot_frame())
        answers = asyncio.create_task(self._answer(ws))
        try:
            while not self.finished:
                await self._resend(ws)
                i = self.position
                frame = self._advance()
                await ws.send(self.corrupt.get(i, frame))
                await asyncio.sleep(0.001)
            self.done.set()
            # As Kraken, a resubscription after the last update still gets its snapshot:
            # a runner fast enough to reach the stream's end before its next retry must
            # not be left stale by the mock.
            with contextlib.suppress(ConnectionClosed):
                while ws.state is State.OPEN:
                    await self._resend(ws)
                    await asyncio.sleep(0.01)
        finally:
            answers.cancel()


def updates() -> list[str]:
    return HostileKraken({})._updates


def with_level(frame: str, price: str) -> str:
    """The update with its first level's price replaced by the literal ``price``."""
    msg = json.loads(frame)
    item = msg["data"][0]
    side = "bids" if item["bids"] else "asks"
    item[side][0]["price"] = "@@"
    return json.dumps(msg).replace('"@@"', price)


async def run(venue: HostileKraken, parser: KrakenParser) -> tuple[LiveRunner, Mirror]:
    port = await venue.start()
    mirror = Mirror()
    runner = LiveRunner(
        parser,
        f"ws://127.0.0.1:{port}",
        [SYMBOL],
        mirror,
        backoff=Backoff(0.05, 0.2, "full"),
        seed=3,
        retry_after=0.2,
    )
    truth = venue.truth.books[SYMBOL]

    def converged() -> bool:
        sync = parser.books.get(SYMBOL)
        return sync is not None and sync.live and sync.book.snapshot() == truth.book.snapshot()

    await until_venue_done(runner.run(), venue, converged)
    return runner, mirror


async def test_mutated_frames_cost_a_resync_never_the_connection() -> None:
    frames = updates()
    venue = HostileKraken(
        {
            60: with_level(frames[60], "9" * 70),  # OverflowError in the book core before
            150: frames[150][: len(frames[150]) // 2],  # truncated
            250: frames[250].encode()[:40] + b"\xff\xfe" + frames[250].encode()[40:],
            350: '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":7}]}',
        }
    )
    parser = KrakenParser()
    runner, mirror = await run(venue, parser)
    truth = venue.truth.books[SYMBOL].book.snapshot()
    sync = parser.books[SYMBOL]
    assert (runner.connections, venue.connections, runner.parser_errors) == (1, 1, 0)
    assert parser.malformed == 4
    assert parser.reasons == {"range": 1, "json": 2, "shape": 1}
    assert sync.live and sync.book.snapshot() == truth
    assert mirror.book.snapshot() == truth
    # The bad price and the bad shape (frames naming their symbol) made the book stale at
    # once; a lost frame shows at the next checksum that it changes. Each time, a
    # resubscription brought the book back.
    assert venue.resubscribed >= 2 and sync.stats.snapshots == 1 + venue.resubscribed
    assert mirror.states == ["stale", "resynced"] * venue.resubscribed


class BuggyKraken(KrakenParser):
    """A parser with a bug: it raises on one frame after that frame changed the book."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison

    def _frame(self, text: str, ts_recv: int) -> list[Any]:
        out = super()._frame(text, ts_recv)
        if text == self.poison:
            raise RuntimeError("bug in the parser")
        return out


async def test_a_parser_exception_is_counted_and_the_book_resyncs() -> None:
    frames = updates()
    venue = HostileKraken({})
    parser = BuggyKraken(frames[100])
    runner, mirror = await run(venue, parser)
    truth = venue.truth.books[SYMBOL].book.snapshot()
    assert runner.parser_errors == 1 and parser.reasons == {"internal": 1}
    assert "RuntimeError: bug in the parser" in parser.errors[0]
    assert runner.connections == 1 and venue.resubscribed >= 1
    assert parser.books[SYMBOL].book.snapshot() == truth
    # The update the failing frame produced was still published: no seq gap downstream
    # (Mirror asserts it), and the resync diff applies to exactly the book consumers hold.
    assert mirror.book.snapshot() == truth
    assert mirror.states[:2] == ["stale", "resynced"]
