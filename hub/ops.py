"""Operator endpoints of every long-running process: /metrics and /healthz.

Processes that already run a websockets server answer these paths from its
``process_request`` hook (``http_response``); the others start a small
server of their own with ``serve_ops``.

Metrics belong to components (``feed``, ``kafka``, ``fanout``, ``recorder``,
``orders``): each module declares its metrics in ``metrics(component)``, the
component's own registry, never in prometheus_client's global one. A process
exports the registries of the components it runs, and only those: each
component's entry object (FeedOutput, ReliablePublisher, FanoutNode, Recorder,
the order gateway) calls ``runs(component)`` when it is built. So a recorder
never exports the fanout's metrics as zeros, and a panel such as
``min(hub_recorder_database_up)`` reads only recorders. Every metric of a
component is named ``hub_<component>_...`` (tests/hub/test_ops.py checks).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from typing import Any, cast

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_go_string
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

_go_string = cast(Callable[[float], str], _untyped_go_string)
"""A bucket bound as prometheus_client writes it (``le="0.0001"``, ``"1.0"``)."""

HealthCheck = Callable[[], dict[str, Any]]
"""Returns a JSON-able status; ``{"ok": False, ...}`` answers 503."""


COMPONENTS = ("feed", "kafka", "fanout", "recorder", "orders", "relay")
"""The components whose metrics a process may export."""
_REGISTRIES = {name: CollectorRegistry() for name in COMPONENTS}
_RUNNING: set[str] = set()
PLATFORM = CollectorRegistry()
"""The process's own platform metrics beside prometheus_client's (``python_gc_pause_seconds``
of app/gc_schedule.py), exported by every process."""


def metrics(component: str) -> CollectorRegistry:
    """The registry a component declares its metrics in."""
    return _REGISTRIES[component]


def runs(component: str) -> None:
    """Say that this process runs ``component``: its metrics are exported from now on."""
    if component not in _REGISTRIES:
        raise KeyError(f"unknown metrics component {component!r}; one of {', '.join(COMPONENTS)}")
    _RUNNING.add(component)


def running() -> list[str]:
    return sorted(_RUNNING)


class _Running(Collector):
    """The process's platform metrics, then those of each component it runs."""

    def collect(self) -> Iterator[Metric]:
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            yield from collector.collect()
        yield from PLATFORM.collect()
        for name in sorted(_RUNNING):
            yield from _REGISTRIES[name].collect()


PROCESS = CollectorRegistry(auto_describe=False)
"""What /metrics of this process answers."""
PROCESS.register(_Running())


class LoopHistogram(Collector):
    """A histogram without labels observed only from the event loop's thread (where
    /metrics is answered too): an observation is a bisect and two additions, with no
    lock. prometheus_client's ``Histogram`` takes a lock for its sum and one for the
    bucket, ~0.7 us, which a per-order metric pays at every order. Exported the same way
    (``_bucket`` with ``le``, ``_count``, ``_sum``)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        """Observations per bucket, each counted once (the last: above every bound)."""
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation)
        les = [*(_go_string(b) for b in self.bounds), "+Inf"]
        total, buckets = 0, []
        for le, n in zip(les, self.counts, strict=True):
            total += n
            buckets.append((le, float(total)))
        family.add_metric([], buckets, self.sum)
        yield family


def response(status: int, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


def ops_response(
    path: str, health: HealthCheck, registry: CollectorRegistry = PROCESS
) -> Response | None:
    """Answer /metrics and /healthz; None for any other path."""
    if path == "/metrics":
        return response(200, generate_latest(registry), CONTENT_TYPE_LATEST)
    if path == "/healthz":
        status = health()
        code = 200 if status.get("ok", False) else 503
        return response(code, orjson.dumps(status), "application/json")
    return None


async def serve_ops(host: str, port: int, health: HealthCheck) -> Server:
    """Serve /metrics and /healthz over plain HTTP on host:port."""

    def process_request(_conn: ServerConnection, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        return ops_response(path, health) or response(404, b"not found\n", "text/plain")

    async def refuse(_conn: ServerConnection) -> None:
        await asyncio.sleep(0)

    return await serve(refuse, host, port, process_request=process_request)


def bound_port(server: Server) -> int:
    """The TCP port a server listens on (useful when configured with port 0)."""
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port
