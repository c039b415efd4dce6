"""One ordered publish at a time, with what arrived meanwhile coalesced into the next.

A venue's frames arrive faster than a publish is acknowledged: the Kafka publisher
waits for the broker's acks (``linger_ms`` plus a round trip, a few milliseconds on
Tansu), so a runner that waited for each frame's publish before reading the next took
at most a few hundred frames a second, fell behind any busy venue and, on a recorded
burst (the Kraken Futures capture's 7,000 deltas), needed 45 s for what it parses in
0.3 s. ``Coalescer`` keeps the order every event was parsed in and lets the frame loop
go on reading while one publish is in flight: the events of the frames read meanwhile
go out together as the next batch. A bounded backlog (``limit`` events) makes the
frame loop wait for the publish, so a stalled broker still pushes back on the venue's
socket instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from hub.events import Event

LIMIT = 20_000
"""Events waiting behind the publish in flight before ``put`` waits for it."""


class Coalescer:
    """Publishes events in the order ``put`` received them, one publish at a time."""

    def __init__(
        self, publish: Callable[[list[Event]], Awaitable[None]], limit: int = LIMIT
    ) -> None:
        self._publish = publish
        self.limit = limit
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self._moved = asyncio.Event()
        """Set whenever the backlog is taken into a publish, a publish lands, or the
        publisher ends."""
        self._task: asyncio.Task[None] | None = None
        self.queued = 0
        self.sent = 0
        self.batches = 0
        """Publishes made (fewer than ``put`` calls once frames arrive faster than acks)."""

    async def put(self, events: Sequence[Event]) -> None:
        """Queue events behind everything queued before; wait only while the backlog is
        over ``limit``. An error of an earlier publish is raised here."""
        self._check()
        if not events:
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="publish")
        self._pending.extend(events)
        self.queued += len(events)
        self._wake.set()
        while len(self._pending) > self.limit and self._running():
            await self._turn()

    async def flush(self) -> None:
        """Wait until everything put so far is published (an error of a publish is raised)."""
        while self.sent < self.queued and self._running():
            await self._turn()
        self._check()

    async def close(self) -> None:
        """Stop publishing; what is still queued is dropped (the stream's next start is a
        new epoch). A publish in flight is cancelled (the feed output lets it land)."""
        task, self._task = self._task, None
        self._pending.clear()
        self.queued = self.sent
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _turn(self) -> None:
        """Wait for the publisher's next step."""
        self._moved.clear()
        await self._moved.wait()
        self._check()

    def _check(self) -> None:
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch, self._pending = self._pending, []
                self._moved.set()
                if batch:
                    self.batches += 1
                    await self._publish(batch)
                    self.sent += len(batch)
                    self._moved.set()
        finally:
            self._moved.set()
