"""Retry delays shared by every loop that waits out an unavailable service."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Exponential delays: ``first``, then twice as long each time, at most ``cap``; with
    ``jitter`` each sleep is 0.5-1.5x the delay, so retrying processes spread out."""

    def __init__(self, first: float, cap: float, jitter: bool = False) -> None:
        self.delay = first
        self.cap = cap
        self.jitter = jitter

    async def wait(self) -> None:
        """Sleep the current delay, then lengthen it."""
        factor = 0.5 + random.random() if self.jitter else 1.0
        await asyncio.sleep(self.delay * factor)
        self.delay = min(self.delay * 2, self.cap)
