"""One logged-on order-entry connection's way out: its outbox and writer task.

Everything a session is sent (its reports, refusals, answers) is queued here, in order,
and one writer task per session sends it, so a slow reader never holds up the committer
or anyone else; past ``OUTBOX_LIMIT`` messages waiting the session is closed as too slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from trading.risk import Account

log = logging.getLogger("hub.orders")

OUTBOX_LIMIT = 50_000
"""Messages queued for one session before it is disconnected as too slow."""
FRAME_MESSAGES = 500
"""Most messages sent in one frame."""


@dataclass(eq=False)
class Session:
    """One logged-on connection. Everything it is sent goes through its own outbox and
    writer task, so a slow reader never holds up the committer or anyone else."""

    ws: ServerConnection
    account: Account
    drop_copy: bool
    rejected: int = 0
    outbox: asyncio.Queue[list[bytes] | None] = field(default_factory=asyncio.Queue)
    """Lists of encoded messages in order (a commit's reports are one list), then None."""
    queued: int = 0
    """Messages in the outbox (at most ``OUTBOX_LIMIT``)."""
    closing: asyncio.Task[None] | None = None
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever the writer has sent everything queued (and once it has ended)."""

    def send(self, message: bytes) -> None:
        self.send_all([message])

    def send_all(self, messages: list[bytes]) -> None:
        """Queue ``messages`` (in order) behind everything queued before; a session with
        more than ``OUTBOX_LIMIT`` messages waiting is disconnected as too slow."""
        if self.queued + len(messages) > OUTBOX_LIMIT:
            if self.closing is None:
                log.warning("slow session disconnected", extra={"account": self.account.id})
                self.closing = asyncio.ensure_future(self.ws.close(1013, "too slow: outbox full"))
            return
        self.queued += len(messages)
        self.outbox.put_nowait(messages)

    def end(self) -> None:
        """The writer sends what is queued, then ends."""
        self.outbox.put_nowait(None)

    async def writer(self) -> None:
        """Send the outbox in order until the end marker (or the connection is gone): each
        frame is a JSON array of what is queued when it is written (at most
        ``FRAME_MESSAGES``), so a busy session costs one frame per wake-up, not one per
        report."""
        try:
            done = False
            while not done:
                items = [await self.outbox.get()]
                while not self.outbox.empty():
                    items.append(self.outbox.get_nowait())
                done = None in items
                messages = [m for item in items if item is not None for m in item]
                for i in range(0, len(messages), FRAME_MESSAGES):
                    frame = messages[i : i + FRAME_MESSAGES]
                    await self.ws.send((b"[" + b",".join(frame) + b"]").decode())
                    self.queued -= len(frame)
                if self.outbox.empty():
                    self.drained.set()
        except ConnectionClosed:
            pass
        finally:
            self.drained.set()  # nobody waits for a writer that is gone

    async def backlog(self, most: int) -> None:
        """Wait until no more than ``most`` messages are queued: work that queues many
        (a resend) goes at the pace this session's own socket takes them."""
        while self.queued > most:
            self.drained.clear()
            await self.drained.wait()


def send_json(session: Session, message: Mapping[str, Any]) -> None:
    session.send(orjson.dumps(message))
