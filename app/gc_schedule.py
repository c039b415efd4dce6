"""When a long-running ``hub`` process lets Python's cyclic garbage collector stop it.

Reference counting frees almost everything at once; the cyclic collector only finds
what refers to itself. It runs by generation: a young collection every few hundred
allocations (about 0.1 ms for the youngest, 1-5 ms for the middle one on this
machine), and a full one whenever a quarter more objects than the last one left
have lived long enough. A full collection walks every object the process holds: the
modules, classes and functions imported at start (about 80 k objects, ~14 ms here)
and whatever state the service keeps (the order path's idempotency window, a fanout
node's sessions), 50-100 ms in all for the order path under load. Left to Python,
one came every second or two at 10 k orders/s, and each held every order queued
behind it: a p99 ack of 24-87 ms in ``bench.bench_orders``, against 2.6-12.6 ms on
this schedule (README, order path).

So a service under ``run_service`` takes full collections on a schedule instead:

- young collections stay automatic (they are short and keep most garbage from ageing);
- the automatic full collection is turned off (its threshold set out of reach);
- before the service starts, and again ``SETTLE_S`` after (once it has imported and
  built what it needs to run), one full collection and ``gc.freeze()``: everything
  alive then moves to the permanent generation, which no later collection walks
  (those objects are still freed by reference counting as usual; what they could
  leak is a cycle among start-up objects that dies later, which a service does not
  make);
- then a full collection every ``gc_full_every_s`` (``HUB_GC_FULL_EVERY_S``), which
  walks only what the service built since start: cyclic garbage that outlived the
  young collections waits at most that long.

``gc_full_every_s = 0`` leaves Python's own schedule. Every collection's pause is
observed in ``python_gc_pause_seconds`` (by generation) on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from prometheus_client import Histogram

from hub import ops

log = logging.getLogger("hub")

SETTLE_S = 5.0
"""From start to the full collection and freeze of what the service built to run."""
FULL_THRESHOLD = 1 << 30
"""Young collections between full ones: out of reach, so only the schedule runs them."""
PAUSES = Histogram(
    "python_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector, by generation (2: a full collection)",
    ["generation"],
    buckets=(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
    registry=ops.PLATFORM,
)


class _Pauses:
    """A ``gc.callbacks`` entry timing each collection into ``PAUSES``."""

    def __init__(self) -> None:
        self.started = 0.0
        self.observe = [PAUSES.labels(str(g)).observe for g in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.observe[info["generation"]](time.perf_counter() - self.started)


def timed() -> None:
    """Observe every collection's pause (once per process)."""
    if not any(isinstance(cb, _Pauses) for cb in gc.callbacks):
        gc.callbacks.append(_Pauses())


def scheduled(every_s: float) -> None:
    """Before the service starts: with ``every_s`` > 0, freeze what is imported so far and
    turn off the automatic full collection (``collect`` runs them)."""
    timed()
    if every_s > 0:
        _full("start")
        gc.freeze()
        young, middle, _full_threshold = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_THRESHOLD)


async def collect(every_s: float, settle_s: float = SETTLE_S) -> None:
    """The schedule: after ``settle_s`` a full collection and freeze, then a full collection
    every ``every_s``. Runs until cancelled; does nothing for ``every_s`` <= 0."""
    if every_s <= 0:
        return
    await asyncio.sleep(settle_s)
    _full("settled")
    gc.freeze()
    log.info("gc: start-up objects frozen", extra={"frozen": gc.get_freeze_count()})
    while True:
        await asyncio.sleep(every_s)
        _full("scheduled")


def _full(why: str) -> None:
    started = time.perf_counter()
    found = gc.collect()
    log.debug(
        "gc: full collection",
        extra={"why": why, "found": found, "ms": round((time.perf_counter() - started) * 1e3, 2)},
    )
