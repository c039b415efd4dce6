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
from typing import Any

from locust import events

from loadtests.measure import CPU_ENTRY, CpuMonitor

log = logging.getLogger("loadtests")

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


class CpuSaturated(Exception):
    """The load generator itself was saturated: its latencies include its own queueing."""


class CpuReporter(CpuMonitor):
    """A ``CpuMonitor`` that logs and records its saturated windows."""

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

    monitor = CpuReporter()
    while True:
        gevent.sleep(window_s)
        monitor.report()


_ENVIRONMENT: list[Any] = []


@events.quit.add_listener
def _final_csv(**_kwargs: Any) -> None:
    """Let locust's CSV writer (every ``CSV_STATS_INTERVAL_SEC``) write once more before it
    closes its files: otherwise ``--csv`` misses what happened in the run's last second,
    the requests of users finishing as the run stopped among them."""
    import gevent
    from locust import stats

    options = _ENVIRONMENT[0].parsed_options if _ENVIRONMENT else None
    if options is not None and getattr(options, "csv_prefix", None):
        gevent.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.2)


@events.init.add_listener
def _start_cpu_monitor(environment: Any, **_kwargs: Any) -> None:
    """A sampling greenlet in each process that runs users (not in a --processes master)."""
    from locust.runners import MasterRunner

    _ENVIRONMENT[:] = [environment]

    if isinstance(environment.runner, MasterRunner) or CPU_WINDOW_S <= 0:
        return
    import gevent

    gevent.spawn(_run_monitor, CPU_WINDOW_S)
