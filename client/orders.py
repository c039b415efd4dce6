"""A small asyncio client for order entry (tests, benchmarks, scripts).

Every frame the server sends is a JSON array of messages; ``OrderClient.recv``
hands them out one at a time, in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

Message = dict[str, Any]


def messages(frame: str | bytes) -> list[Message]:
    """The messages of one frame."""
    data = orjson.loads(frame)
    return data if isinstance(data, list) else [data]


class OrderClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._buffer: deque[Message] = deque()

    @classmethod
    async def logon(cls, url: str, key: str, **kwargs: Any) -> tuple[OrderClient, Message]:
        """Connect with the API key in the Authorization header; return the logon answer."""
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {key}"}, **kwargs)
        client = cls(ws)
        return client, await client.recv(10)

    async def send(self, message: Message | str | bytes) -> None:
        """Send a message (a str goes as it is: already JSON, or deliberately not; bytes go
        as a binary frame, which the server refuses)."""
        if isinstance(message, dict):
            message = orjson.dumps(message).decode()
        await self.ws.send(message)

    async def recv(self, wait: float | None = None) -> Message:
        """The next message; TimeoutError after ``wait`` seconds without a frame."""
        while not self._buffer:
            frame = await asyncio.wait_for(self.ws.recv(), wait)
            self._buffer.extend(messages(frame))
        return self._buffer.popleft()

    async def until(
        self, pred: Callable[[Message], bool], limit: int = 1000, wait: float = 10
    ) -> list[Message]:
        """Messages up to and including the first that ``pred`` accepts."""
        seen = []
        for _ in range(limit):
            m = await self.recv(wait)
            seen.append(m)
            if pred(m):
                return seen
        raise AssertionError(f"no such message among {len(seen)}: {seen[-3:]}")

    async def resend(self, from_seq: int = 1, wait: float = 10) -> list[Message]:
        """Every report from ``from_seq`` up to the account's last durable one, asking page
        by page while ``resend_done`` says there is ``more``, waiting when the account's
        rate limit refuses a request (messages in between that are not resent reports are
        dropped: read them before calling)."""
        out: list[Message] = []
        refused = 0
        while True:
            await self.send({"op": "resend", "from_seq": from_seq})
            page = await self.until(
                lambda m: m.get("type") in ("resend_done", "reject"), 1_000_000, wait
            )
            done = page[-1]
            if done["type"] == "reject":
                if done["reason"] != "rate_limited" or refused >= 10:
                    raise AssertionError(f"resend refused: {done}")
                refused += 1
                await asyncio.sleep(0.5)  # the account's rate limit refills
                continue
            out += [m for m in page if m.get("type") == "exec" and m["seq"] <= done["last_seq"]]
            if not done.get("more"):
                return out
            from_seq = done["to_seq"] + 1

    async def close(self) -> None:
        await self.ws.close()
