"""The live runner against a capture played back by a mock venue over a real WebSocket:
shared by the venue tests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from feedhandler.venues.base import ParserBase
from feedhandler.venues.runner import LiveRunner
from hub.backoff import Backoff
from hub.events import BookUpdate, Event, Status
from orderbook_core import L2Book
from testing.mock_venue import MockCaptureVenue
from tests.conftest import ROOT

DONE_S = 120.0
"""A bound for a hang, not a timing: the Crypto.com capture (3,164 frames of 150-level books)
takes 5 CPU-seconds to parse, over 30 s of wall time on a loaded 2-core machine."""


def check_capture(path: Path) -> subprocess.CompletedProcess[str]:
    """``hub replay capture PATH --check`` as a user runs it; asserts it exits 0 (its stdout
    is the replay's JSON summary)."""
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", "capture", str(path), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out


class Books:
    """Downstream consumers, one per symbol: each rebuilds its book from the published,
    gap-free updates only, and the stream states are kept in order."""

    def __init__(self) -> None:
        self.books: dict[str, L2Book] = {}
        self.seqs: dict[str, int] = {}
        self.states: list[str] = []

    async def publish(self, events: Sequence[Event]) -> None:
        for e in events:
            if isinstance(e, BookUpdate):
                assert e.seq == self.seqs.get(e.symbol, 0) + 1
                self.seqs[e.symbol] = e.seq
                self.books.setdefault(e.symbol, L2Book()).apply(e.changes)
            elif isinstance(e, Status):
                self.states.append(e.state)


VOLATILE = ("time", "id")
"""Keys of a keep-alive that change from one to the next (Gate.io's time, KuCoin's id)."""


def _alike(want: str, got: str) -> bool:
    """The same message, or the same JSON object but for its ``VOLATILE`` keys."""
    if want == got:
        return True
    try:
        a, b = json.loads(want), json.loads(got)
    except ValueError:
        return False
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return {k: v for k, v in a.items() if k not in VOLATILE} == {
        k: v for k, v in b.items() if k not in VOLATILE
    }


async def runner_against_capture(
    path: Path,
    make: Callable[[], ParserBase],
    symbols: list[str],
    heartbeat_s: float = 0.0,
    expect: Sequence[str] = (),
    tokens: bool = False,
) -> tuple[LiveRunner, Books, MockCaptureVenue]:
    """The live runner against the capture played back over a real WebSocket (its REST
    answers served too), until every frame has been received, the venue has received the
    ``expect`` messages and, with ``heartbeat_s``, the parser's heartbeats, sent that often.
    With ``tokens`` the venue hands out connect tokens (``MockCaptureVenue``) and names
    ``heartbeat_s`` as its ping interval in their answers."""
    mock = MockCaptureVenue(path, tokens=tokens, ping_interval_ms=int(heartbeat_s * 1000))
    port = await mock.start()
    books = Books()
    parser = make()
    if heartbeat_s and not tokens:
        parser.heartbeat_s = heartbeat_s
    beats = [*(make().heartbeat() if heartbeat_s else []), *expect]  # matched by _alike
    runner = LiveRunner(
        parser,
        f"ws://127.0.0.1:{port}",
        symbols,
        books,
        rest=f"http://127.0.0.1:{mock.rest_port}",
        backoff=Backoff(0.05, 0.2, "full"),
        seed=1,
    )
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(mock.done.wait(), DONE_S)
        for _ in range(500):
            beat = all(any(_alike(b, m) for m in mock.received) for b in beats)
            if runner.frames >= len(mock.frames) and beat:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await mock.stop()
    return runner, books, mock
