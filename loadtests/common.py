"""What both locust files share: reporting to locust, and the load generator's own CPU.

A locust process is one Python interpreter: past about one core of work its
greenlets queue behind each other and every latency it reports grows by the
time a frame waited to be read, which is the load generator's limit, not the
hub's. ``CpuMonitor`` samples the process's own CPU time (``time.process_time``)
over wall time in every process that runs users (each ``--processes`` worker,
or the single local process) and, for a window above ``HUB_LOAD_CPU_LIMIT``
(default 0.9 of one core), logs a warning and records a failure named
``worker cpu saturated`` (request type ``CPU``, its "response time" the CPU
share in percent). Spread the users over more processes (``--processes N``)
when it appears.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from locust import events

log = logging.getLogger("loadtests")

CPU_ENTRY = "worker cpu saturated"
CPU_LIMIT = float(os.environ.get("HUB_LOAD_CPU_LIMIT", "0.9"))
CPU_WINDOW_S = float(os.environ.get("HUB_LOAD_CPU_WINDOW", "5"))


def fire(
    name: str,
    started: float,
    exception: BaseException | None = None,
    length: int = 0,
    request_type: str = "WS",
) -> None:
    """One locust entry timed from ``started`` (a ``time.perf_counter`` value) to now."""
    record(name, (time.perf_counter() - started) * 1000, exception, length, request_type)


def record(
    name: str,
    response_ms: float,
    exception: BaseException | None = None,
    length: int = 0,
    request_type: str = "WS",
) -> None:
    """One locust entry with a response time already measured."""
    events.request.fire(
        request_type=request_type,
        name=name,
        response_time=response_ms,
        response_length=length,
        exception=exception,
        context={},
    )


def cpu_share(wall_s: float, cpu_s: float) -> float:
    """The share of one core a process used over a window (1.0: one core busy)."""
    return cpu_s / wall_s if wall_s > 0 else 0.0


class CpuSaturated(Exception):
    """The load generator itself was saturated: its latencies include its own queueing."""


class CpuMonitor:
    """Samples one process's CPU share per window and says when it was over the limit.

    ``wall`` and ``cpu`` are the clocks (``time.monotonic`` and ``time.process_time`` by
    default, injectable for tests)."""

    def __init__(
        self,
        limit: float = CPU_LIMIT,
        wall: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.limit = limit
        self.wall = wall
        self.cpu = cpu
        self.last = (wall(), cpu())
        self.saturated_windows = 0

    def sample(self) -> float | None:
        """The share of the window since the last sample when it is over the limit, else
        None."""
        now = (self.wall(), self.cpu())
        share = cpu_share(now[0] - self.last[0], now[1] - self.last[1])
        self.last = now
        if share <= self.limit:
            return None
        self.saturated_windows += 1
        return share

    def report(self) -> float | None:
        """Sample, and on saturation log a warning and record a locust failure."""
        share = self.sample()
        if share is not None:
            log.warning(
                "locust process %d used %.0f%% of one core over the last window (limit %.0f%%): "
                "its latencies include its own queueing; use more --processes",
                os.getpid(),
                share * 100,
                self.limit * 100,
            )
            record(
                CPU_ENTRY,
                share * 100,
                CpuSaturated(f"{share:.0%} of one core"),
                request_type="CPU",
            )
        return share


def _run_monitor(window_s: float) -> None:
    import gevent

    monitor = CpuMonitor()
    while True:
        gevent.sleep(window_s)
        monitor.report()


@events.init.add_listener
def _start_cpu_monitor(environment: Any, **_kwargs: Any) -> None:
    """A sampling greenlet in each process that runs users (not in a --processes master)."""
    from locust.runners import MasterRunner

    if isinstance(environment.runner, MasterRunner) or CPU_WINDOW_S <= 0:
        return
    import gevent

    gevent.spawn(_run_monitor, CPU_WINDOW_S)
