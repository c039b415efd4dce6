"""A session's outbox (trading/session.py ``Session``): order, frames, the slow-reader bound."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import pytest

from trading import session as outbox
from trading.risk import Account
from trading.session import FRAME_MESSAGES, Session


class FakeConnection:
    """What the writer sends, frame by frame; ``gate`` cleared: a reader that stopped."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self.closed: list[tuple[int, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, text: str) -> None:
        await self.gate.wait()
        self.frames.append(orjson.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


def session(ws: FakeConnection) -> Session:
    return Session(cast(Any, ws), Account(7, "t", "k" * 32), drop_copy=False)


def msg(i: int) -> bytes:
    return orjson.dumps({"n": i})


async def test_messages_go_out_in_order_in_frames_of_at_most_the_frame_limit() -> None:
    ws = FakeConnection()
    s = session(ws)
    s.send_all([msg(i) for i in range(3)])
    s.send(msg(3))
    s.send_all([msg(i) for i in range(4, 4 + 2 * FRAME_MESSAGES + 5)])
    s.end()
    await asyncio.wait_for(s.writer(), 5)
    sent = [m["n"] for frame in ws.frames for m in frame]
    assert sent == list(range(4 + 2 * FRAME_MESSAGES + 5))
    assert max(len(f) for f in ws.frames) == FRAME_MESSAGES
    assert len(ws.frames) == 3  # all queued before the writer woke: as few frames as allowed
    assert s.queued == 0 and s.drained.is_set()


async def test_a_session_that_stops_reading_is_closed_once_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "OUTBOX_LIMIT", 10)
    ws = FakeConnection()
    ws.gate.clear()
    s = session(ws)
    writer = asyncio.create_task(s.writer())
    s.send_all([msg(i) for i in range(4)])
    await asyncio.sleep(0)  # the writer takes them and blocks on the socket
    s.send_all([msg(i) for i in range(4, 10)])  # 10 waiting or in flight: at the limit
    assert ws.closed == [] and s.queued == 10
    s.send(msg(10))
    s.send_all([msg(11), msg(12)])
    await asyncio.sleep(0)
    assert ws.closed == [(1013, "too slow: outbox full")]  # once
    assert s.queued == 10  # what passed the limit was never queued
    ws.gate.set()
    s.end()
    await asyncio.wait_for(writer, 5)
    assert [m["n"] for frame in ws.frames for m in frame] == list(range(10))


async def test_backlog_waits_until_the_writer_has_sent_down_to_the_mark() -> None:
    ws = FakeConnection()
    ws.gate.clear()
    s = session(ws)
    writer = asyncio.create_task(s.writer())
    s.send_all([msg(i) for i in range(50)])
    waiting = asyncio.create_task(s.backlog(5))
    await asyncio.sleep(0.01)
    assert not waiting.done() and s.queued == 50
    ws.gate.set()
    await asyncio.wait_for(waiting, 5)
    assert s.queued <= 5
    s.end()
    await asyncio.wait_for(writer, 5)
    assert sum(len(f) for f in ws.frames) == 50
