"""How every long-running ``hub`` process stops: bounded, logged, never ignored.

The first SIGTERM or SIGINT cancels the service coroutine, which then runs its
clean shutdown (flush, close); a watchdog thread, started at the same moment
and never disarmed (it covers the event loop's and the interpreter's teardown
too, where a stuck executor thread would otherwise hold the exit), forces the
exit when all that takes longer than the shutdown bound, and a second signal
forces it at once. Either forced exit logs its reason and every task's
stack first (the stacks say where the clean shutdown was stuck). The watchdog
is a thread so that it fires even while a blocking call holds the event loop.

Why a plain ``hub feed`` once ignored SIGTERM: Python 3.11's ``asyncio.wait_for``
loses a cancellation that arrives in the instant the awaited call completes (it
returns the result instead of raising; CPython gh-86296, fixed in 3.12 by
building it on ``asyncio.timeout``). redis-py wraps every socket write in it,
so a SIGTERM landing just as a snapshot write finished was swallowed and the
feed ran on. ``fix_wait_for`` installs the 3.12 version on 3.11, for every
library in the process.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("hub")

FORCED_EXIT = 1
"""Exit code of a forced stop (second signal, or the shutdown bound expired)."""


async def _wait_for(fut: Any, timeout: float | None) -> Any:  # noqa: ASYNC109 (its API)
    """``asyncio.wait_for`` as Python 3.12 has it: a cancellation always propagates."""
    if timeout is not None and timeout <= 0:
        task = asyncio.ensure_future(fut)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait([task])
        try:
            return task.result()
        except asyncio.CancelledError as exc:
            raise TimeoutError from exc
    async with asyncio.timeout(timeout):
        return await fut


def fix_wait_for() -> None:
    """On Python 3.11, replace ``asyncio.wait_for`` (which can swallow a cancellation)
    with the 3.12 implementation, for every module that calls it through ``asyncio``."""
    if sys.version_info < (3, 12):
        asyncio.wait_for = _wait_for
        asyncio.tasks.wait_for = _wait_for


def _frames(obj: object) -> list[types.FrameType]:
    """The frames of a coroutine and of everything it awaits, outermost first."""
    frames = []
    seen = 0
    while obj is not None and seen < 200:
        seen += 1
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    return frames


def dump_tasks(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Print every asyncio task's await chain (file, line, code): where each one waits."""
    out = sys.stderr
    try:
        tasks = asyncio.all_tasks(loop)
    except RuntimeError:
        return
    for task in tasks:
        print(
            f"--- task {task.get_name()} ({'cancelling' if task.cancelling() else 'running'})",
            file=out,
        )
        for frame in _frames(task.get_coro()):
            code = frame.f_code
            print(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}", file=out)
    out.flush()


class StopRequested(BaseException):
    """SIGTERM arrived before the service's event loop handled signals (start-up)."""


def stop_early(signum: int, _frame: object) -> None:
    """The SIGTERM handler of start-up: unwind the command at once (nothing runs yet)."""
    raise StopRequested(signal.Signals(signum).name)


def force_exit(reason: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Log why, dump the threads and tasks, and leave the process now (no cleanup)."""
    log.error("forced exit", extra={"why": reason})
    faulthandler.dump_traceback(all_threads=True)
    dump_tasks(loop)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(FORCED_EXIT)


class Shutdown:
    """The stop request of one service task: signals in, bounded shutdown out."""

    def __init__(self, task: asyncio.Task[Any], bound_s: float) -> None:
        self.task = task
        self.bound_s = bound_s
        self.requested_at: float | None = None
        self.signal_name = ""
        self._watchdog: threading.Timer | None = None

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.requested_at is not None:
            force_exit(f"second signal ({name}) during shutdown")
            return
        self.requested_at = time.monotonic()
        self.signal_name = name
        log.info("stopping", extra={"signal": name, "bound_s": self.bound_s})
        self._watchdog = threading.Timer(
            self.bound_s,
            force_exit,
            (f"shutdown took longer than {self.bound_s:g} s", asyncio.get_running_loop()),
        )
        self._watchdog.daemon = True
        self._watchdog.start()
        self.task.cancel()


def run_service(
    runner: Callable[[], Coroutine[Any, Any, None]],
    bound_s: float,
    gc_full_every_s: float = 0.0,
    stop_on: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> None:
    """Run a service coroutine on uvloop until it ends or a signal of ``stop_on`` stops it,
    with full garbage collections every ``gc_full_every_s`` (app.gc_schedule; 0: Python's)."""
    import uvloop

    from app import gc_schedule

    fix_wait_for()
    gc_schedule.scheduled(gc_full_every_s)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        stop = Shutdown(task, bound_s)
        for sig in stop_on:
            loop.add_signal_handler(sig, stop.on_signal, sig)
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        collector = asyncio.create_task(gc_schedule.collect(gc_full_every_s), name="gc")
        try:
            await runner()
        except asyncio.CancelledError:
            if stop.requested_at is None:
                raise
            log.info(
                "stopped by signal",
                extra={
                    "signal": stop.signal_name,
                    "took_s": round(time.monotonic() - stop.requested_at, 3),
                },
            )
        finally:
            collector.cancel()

    try:
        uvloop.run(main())
    finally:
        signal.signal(signal.SIGTERM, stop_early)
