"""The load tests' decisions, without locust (importing locust patches a process for
gevent): which pending order request a report answers, and when a process's CPU share
over a window is saturation. ``loadtests/common.py`` and ``loadtests/orders.py`` use
them inside locust; the tests call them directly."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

CPU_ENTRY = "worker cpu saturated"
CPU_LIMIT = float(os.environ.get("HUB_LOAD_CPU_LIMIT", "0.9"))
"""Share of one core over a window above which a locust process is saturated."""


def cpu_share(wall_s: float, cpu_s: float) -> float:
    """The share of one core a process used over a window (1.0: one core busy)."""
    return cpu_s / wall_s if wall_s > 0 else 0.0


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


def answers(
    m: Mapping[str, Any], pending: Mapping[tuple[str, str], float]
) -> tuple[str, str] | None:
    """The pending (op, cl_ord_id) that order-entry report ``m`` answers, if any.

    ``new``: ``accepted`` (or an engine ``rejected``) of its order; ``cancel``:
    ``cancelled`` with reason ``user_cancel``; ``replace``: ``replaced`` with no reason (a
    self-trade ``replaced`` is not one) or an engine ``rejected``; a ``reject`` of the op
    with the same ``cl_ord_id``, or without one (a cancel's or replace's) the oldest
    pending request of that op (rejects are answered at once, in order). Fills, triggers,
    self-trade and IOC cancels answer nothing."""
    if m["type"] == "reject":
        op = m.get("op", "")
        cl = m.get("cl_ord_id")
        if cl is not None:
            return (op, cl) if (op, cl) in pending else None
        return next((k for k in pending if k[0] == op), None)
    if m["type"] != "exec":
        return None
    cl, kind, reason = m["cl_ord_id"], m["exec_type"], m.get("reason")
    if kind == "accepted":
        candidates = ["new"]
    elif kind == "rejected":
        candidates = ["new", "replace", "cancel"]
    elif kind == "cancelled" and reason == "user_cancel":
        candidates = ["cancel"]
    elif kind == "replaced" and reason in (None, "none"):
        candidates = ["replace"]
    else:
        return None
    return next(((op, cl) for op in candidates if (op, cl) in pending), None)
