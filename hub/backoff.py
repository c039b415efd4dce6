"""Retry delays shared by every loop that waits out an unavailable service or venue."""

from __future__ import annotations

import asyncio
import random
from typing import Literal

Jitter = Literal["none", "spread", "full"]


class Backoff:
    """Exponential delays: ``first``, then twice as long each time, at most ``cap``.

    ``jitter`` spreads retrying processes out: ``spread`` sleeps 0.5-1.5x the delay,
    ``full`` anywhere in [0, delay] (for reconnects to a venue many clients share)."""

    def __init__(
        self, first: float, cap: float, jitter: Jitter = "none", rng: random.Random | None = None
    ) -> None:
        self.first = first
        self.delay = first
        self.cap = cap
        self.jitter = jitter
        self.rng = rng or random.Random()

    def next(self) -> float:
        """The time to sleep now; the delay after it is twice as long (up to ``cap``)."""
        d = self.delay
        self.delay = min(self.delay * 2, self.cap)
        if self.jitter == "spread":
            return d * (0.5 + self.rng.random())
        if self.jitter == "full":
            return self.rng.uniform(0, d)
        return d

    def reset(self) -> None:
        """Back to ``first`` (after a success)."""
        self.delay = self.first

    async def wait(self) -> None:
        """Sleep the current delay, then lengthen it."""
        await asyncio.sleep(self.next())
