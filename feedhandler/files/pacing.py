"""The shape of file replays as event sources, and their pacing.

Each ``*_batches`` function (``capture_batches`` in replay.py, ``itch_batches``,
``lobster_batches``, ``databento_batches`` beside their formats) yields
``(ts_ns, events)``: the events one input record produced and the venue time
used to pace them. ``Pacer`` turns venue time into wall-clock waits for
``--speed``: ``max`` (no waiting), ``1`` (real time) or any multiple (``10`` =
ten times faster). Bad records are counted and logged through ``on_error`` with
the file position and the replay goes on; nothing already applied is touched,
because every replay checks a record before it changes a book.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from hub.errors import BadInput
from hub.events import Event

log = logging.getLogger("hub.feed")

Batch = tuple[int, list[Event]]

OnError = Callable[[str], None]

UNREADABLE = "unreadable: "
"""How a capture line that could not be read at all is reported (after its line number)."""


def parse_speed(text: str) -> float:
    """``max`` -> 0 (no pacing); otherwise a positive multiple of real time."""
    if text == "max":
        return 0.0
    try:
        factor = float(text.removeprefix("x"))
    except ValueError:
        factor = -1.0
    if not factor > 0:
        raise BadInput(f"--speed must be 'max' or a positive number, got {text!r}")
    return factor


class Pacer:
    """Waits so that records stamped ``ts_ns`` leave at ``speed`` times their original pace."""

    def __init__(self, speed: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.factor = parse_speed(speed)
        self.clock = clock
        self._start = 0.0
        self._first: int | None = None

    def delay(self, ts_ns: int) -> float:
        """Seconds to wait before the record stamped ``ts_ns`` (0 at max speed)."""
        if self.factor == 0 or ts_ns <= 0:
            return 0.0
        if self._first is None:
            self._first, self._start = ts_ns, self.clock()
        due = self._start + (ts_ns - self._first) / 1e9 / self.factor
        return max(0.0, due - self.clock())


class TimeSlice:
    """When a replay running on the event loop should let it run other work: after
    ``slice_s`` of work since the last yield, or after ``every`` batches, whichever comes
    first. A replay at ``--speed max`` never waits on its own, so without this it would
    hold the loop (the node's HTTP and WebSocket) for the whole file."""

    def __init__(
        self,
        slice_s: float = 0.002,
        every: int = 256,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.slice_s = slice_s
        self.every = every
        self.clock = clock
        self.yields = 0
        self._since = clock()
        self._batches = 0

    def due(self) -> bool:
        """Count one batch done; True when the caller should yield now (and then it is
        counted as a yield and the slice starts again)."""
        self._batches += 1
        now = self.clock()
        if self._batches < self.every and now - self._since < self.slice_s:
            return False
        self._batches = 0
        self._since = now
        self.yields += 1
        return True


def log_bad_record(path: Path) -> OnError:
    count = [0]

    def report(text: str) -> None:
        count[0] += 1
        if count[0] <= 20 or count[0] % 1000 == 0:
            log.warning("bad replay record skipped", extra={"file": str(path), "why": text[:200]})

    return report
