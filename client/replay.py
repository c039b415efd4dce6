"""A replay read through the protocol (docs/protocol.md "Replay"): each stream's book
mirrored from its ``instrument``, ``snapshot`` and ``book`` messages with every seq and
checksum checked, as for a live subscription, and the replay's own clock.

    async with ReplayClient("ws://127.0.0.1:8765", ["itch:12302019.NASDAQ_ITCH50.gz"],
                            start="2019-12-30T14:30:00Z", speed=10) as replay:
        async for msg in replay.messages():
            ...
    replay.books["ITCH", "AAPL"].best(0)

A replay is not resumed after a lost connection (it would start over): ``messages`` ends
when the node closes, and ``ended`` holds the node's ``ended`` message when it played to
its end (None when the connection was lost before).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK

from client.market import BookMirror


def replay_url(url: str, query: dict[str, str]) -> str:
    """The node's /replay URL (from any URL of the node) with the request as its query."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/replay", query=urlencode(query)))


class ReplayError(Exception):
    """The node refused the replay, or a source failed part way (its ``error`` message)."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(f"{message.get('code')}: {message.get('message')}")
        self.message = message


class ReplayClient:
    """One replay: its request, the books it builds and how it ended."""

    def __init__(
        self,
        url: str,
        sources: Iterable[str],
        start: str | int | None = None,
        end: str | int | None = None,
        speed: float | str = "max",
        channels: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
        token: str | None = None,
    ) -> None:
        query = {"sources": ",".join(sources), "speed": str(speed)}
        if start is not None:
            query["from"] = str(start)
        if end is not None:
            query["to"] = str(end)
        if channels:
            query["channels"] = ",".join(channels)
        if symbols:
            query["symbols"] = ",".join(symbols)
        self.url = replay_url(url, query)
        self.token = token
        self.ws: ClientConnection | None = None
        self.instruments: dict[tuple[str, str], dict[str, Any]] = {}
        self.books: dict[tuple[str, str], BookMirror] = {}
        self.playing: dict[str, Any] | None = None
        self.ended: dict[str, Any] | None = None
        self.clock = 0
        """The latest event time seen (ns): the replay's clock, not the wall's."""

    async def __aenter__(self) -> ReplayClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self.ws = await connect(self.url, additional_headers=headers, max_size=None)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()

    def apply(self, msg: dict[str, Any]) -> None:
        """Keep the replay's state; raise SequenceGap or ChecksumMismatch on a wrong book
        and ReplayError on an ``error`` message."""
        kind = msg["type"]
        if kind == "replay":
            if msg["state"] == "playing":
                self.playing = msg
            else:
                self.ended = msg
                self.clock = max(self.clock, msg.get("clock") or 0)
            return
        if kind == "error":
            raise ReplayError(msg)
        key = (msg.get("venue", ""), msg.get("symbol", ""))
        if kind == "instrument":
            self.instruments[key] = msg
            return
        self.clock = max(self.clock, msg.get("ts_event") or 0)
        if kind == "snapshot":
            inst = self.instruments[key]
            self.books[key] = BookMirror(inst["tick_size"], inst["lot_size"], msg.get("depth", 0))
        if kind in ("snapshot", "book"):
            self.books[key].apply(msg)

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """Every message of the replay, each applied before it is given, until the node
        closes the connection."""
        assert self.ws is not None, "use: async with ReplayClient(...) as replay"
        try:
            async for data in self.ws:
                frame = orjson.loads(data)
                for msg in frame if isinstance(frame, list) else [frame]:
                    self.apply(msg)
                    yield msg
        except ConnectionClosedOK:
            return
