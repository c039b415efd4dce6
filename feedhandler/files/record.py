"""``hub capture``: record a live venue's traffic in the capture format.

Runs the same live runner as ``hub feed`` (subscribe, REST snapshots,
reconnects, resyncs), with its capture hook on and nothing published, so the
recording holds exactly what a replay needs: every frame sent and received
and every REST answer, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

from feedhandler.files.capture import CaptureError, CaptureWriter
from feedhandler.venues import VENUES
from feedhandler.venues.runner import LiveRunner


class _Discard:
    async def publish(self, events: Any) -> None:
        del events


async def record(
    venue: str,
    symbols: list[str],
    out: Path,
    url: str | None = None,
    rest_url: str | None = None,
    duration: float = 0,
    frames: int = 0,
) -> dict[str, Any]:
    """Record until ``duration`` seconds or ``frames`` frames (or cancellation); summary."""
    spec = VENUES[venue]
    parser = spec.parser()
    try:
        writer = CaptureWriter(
            out, parser.venue, {"venue": venue, "symbols": symbols, "l2_book": symbols}
        )
    except OSError as exc:
        raise CaptureError(f"{out}: cannot write: {exc.strerror or exc}") from exc
    runner = LiveRunner(
        parser,
        spec.ws_url(url or spec.url, symbols),
        symbols,
        _Discard(),
        rest=spec.rest if rest_url is None else rest_url,
        lifetime=spec.lifetime,
        capture=writer,
    )
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    started = loop.time()
    try:
        while not task.done():
            if duration and loop.time() - started >= duration:
                break
            if frames and runner.frames >= frames:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()
    return {
        "file": str(out),
        "venue": venue,
        "lines": writer.lines,
        "frames": runner.frames,
        "connections": runner.connections,
        "rest_answers": runner.snapshot_fetches,
        "malformed": parser.malformed,
    }


def capture(
    venue: str,
    symbols: list[str],
    out: Path,
    url: str | None,
    rest_url: str | None,
    duration: float,
    frames: int,
) -> int:
    """Record and print the summary; exit status 0, or 1 if no frame came (CaptureError if
    ``out`` cannot be written)."""
    summary = asyncio.run(record(venue, symbols, out, url, rest_url, duration, frames))
    print(json.dumps(summary, indent=2))
    return 0 if summary["frames"] else 1
