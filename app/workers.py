"""``hub fanout --workers N``: N fanout node processes sharing one port (SO_REUSEPORT).

The supervisor (this process) reserves the port, starts the workers, restarts one
that dies (with backoff) and stops them all on SIGTERM/SIGINT. Each worker is an
ordinary ``hub fanout`` node (its own Kafka consumer of the same streams, its own
book sync and sessions) whose listening socket joins the port's SO_REUSEPORT group:
the kernel spreads new connections across the workers, and a client that loses
its worker resumes on another like on any other node.

What an operator scrapes stays one view of the whole port: each worker also serves
its own ``/metrics`` and ``/healthz`` on a private loopback port, written to the run
directory, and whichever worker answers a ``/metrics`` or ``/healthz`` on the shared
port gathers its siblings' (every sample labelled ``worker``; not ok while any worker
is down or not ok).

Limits stay per worker: ``max_connections`` and a key's connection and view limits
apply in each worker, so N workers admit up to N times as many.

``hub demo --workers N`` runs the same supervisor with demo workers: the feed stays in
the supervisor's process and reaches the workers through its relay (bus.relay), a
Unix socket in the run directory; the feed's own ``/metrics`` and ``/healthz`` join the
port's (samples labelled ``worker="feed"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from websockets.http11 import Response

from hub.backoff import Backoff
from hub.config import HubConfig
from hub.errors import ConfigError, ServiceError
from hub.ops import PROCESS, response

log = logging.getLogger("hub.workers")

READY_TIMEOUT_S = 60.0
"""How long a worker may take to start (Kafka, Redis, first bind) before the supervisor
gives up at start-up."""
SIBLING_TIMEOUT_S = 1.0
"""How long a worker waits for a sibling's /metrics or /healthz."""
STABLE_S = 30.0
"""A worker that ran this long before it died is restarted at once (backoff reset)."""


MAX_WORKERS = 256


def worker_count(asked: int) -> int:
    """``asked`` workers; 0: one per core."""
    if not 0 <= asked <= MAX_WORKERS:
        raise ConfigError(f"fanout.workers must be 0 (one per core) to {MAX_WORKERS}, got {asked}")
    return asked if asked > 0 else max(1, os.cpu_count() or 1)


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, never listening SO_REUSEPORT socket on host:port (port 0: a free one): it
    holds the port for the workers (and their restarts) without taking connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


# --- the worker side -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Slot:
    """Which worker a process is: its index, of how many, and the run directory."""

    index: int
    count: int
    rundir: Path

    @property
    def relay(self) -> Path:
        """The demo feed's relay socket (``hub demo --workers``)."""
        return self.rundir / RELAY

    def ready(self, ops_port: int) -> None:
        """Tell the supervisor and the siblings this worker serves (atomically)."""
        listed(self.rundir, f"worker-{self.index}", {"worker": self.index, "ops_port": ops_port})


RELAY = "relay.sock"
FEED = "feed"
"""The run-directory entry of the demo's feed process (its private ops port)."""


def listed(rundir: Path, name: str, info: dict[str, Any]) -> None:
    """Write ``<name>.json`` (this process's pid added) into the run directory, atomically."""
    tmp = rundir / f".{name}.tmp"
    tmp.write_text(json.dumps({**info, "pid": os.getpid()}))
    tmp.replace(rundir / f"{name}.json")


class Siblings:
    """The other workers of this port, found through the run directory."""

    def __init__(self, slot: Slot) -> None:
        self.rundir = slot.rundir
        self.me = slot.index
        self.count = slot.count

    def ports(self) -> dict[int, int]:
        """worker index -> private ops port, of every worker that says it is up."""
        out: dict[int, int] = {}
        for path in sorted(self.rundir.glob("worker-*.json")):
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = json.loads(path.read_text())
                out[int(info["worker"])] = int(info["ops_port"])
        return out

    def feed_port(self) -> int | None:
        """The demo feed's private ops port, when this port's workers are a demo's."""
        try:
            return int(json.loads((self.rundir / f"{FEED}.json").read_text())["ops_port"])
        except (OSError, ValueError, KeyError):
            return None

    def answer(self, path: str, own_health: dict[str, Any]) -> Awaitable[Response] | None:
        """The port-wide answer to /metrics or /healthz; None for any other path."""
        if path == "/metrics":
            return self._metrics()
        if path == "/healthz":
            return self._health(own_health)
        return None

    async def _gather(self, path: str) -> dict[int | str, tuple[int, bytes] | None]:
        """Every sibling's answer to ``path`` (the demo's feed as ``"feed"``)."""
        others: dict[int | str, int] = {i: p for i, p in self.ports().items() if i != self.me}
        feed = self.feed_port()
        if feed is not None:
            others[FEED] = feed
        answers = await asyncio.gather(*(fetch(port, path) for port in others.values()))
        return dict(zip(others, answers, strict=True))

    async def _metrics(self) -> Response:
        texts = {str(self.me): generate_latest(PROCESS).decode()}
        for i, got in (await self._gather("/metrics")).items():
            if got is not None and got[0] == 200:
                texts[str(i)] = got[1].decode()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Labelled(texts))
        return response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    async def _health(self, own: dict[str, Any]) -> Response:
        answers: dict[int | str, dict[str, Any]] = {self.me: own}
        for i, got in (await self._gather("/healthz")).items():
            try:
                answers[i] = json.loads(got[1]) if got is not None else {"ok": False}
            except ValueError:
                answers[i] = {"ok": False}
            if got is None:
                answers[i]["error"] = "did not answer"
        feed = answers.pop(FEED, None)
        workers = {i: a for i, a in answers.items() if isinstance(i, int)}
        missing = [i for i in range(self.count) if i not in workers]
        status = {
            "ok": not missing
            and all(w.get("ok", False) for w in answers.values())
            and (feed is None or feed.get("ok", False)),
            "workers": self.count,
            "answered_by": self.me,
            "missing": missing,
            "nodes": [{"worker": i, **workers[i]} for i in sorted(workers)],
        }
        if feed is not None:  # asked (a demo's workers), answered or not
            status["feed"] = feed
        return response(200 if status["ok"] else 503, json.dumps(status).encode(), JSON)


JSON = "application/json"


class _Labelled(Collector):
    """The workers' expositions as one, every sample labelled with its worker."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for worker, text in sorted(self.texts.items()):
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for s in family.samples:
                    labels = {**s.labels, "worker": worker}
                    merged.samples.append(s._replace(labels=labels))
        yield from families.values()


async def fetch(port: int, path: str) -> tuple[int, bytes] | None:
    """GET http://127.0.0.1:port/path: (status, body), or None when it does not answer."""
    try:
        async with asyncio.timeout(SIBLING_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                raw = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        return None


def worker_main(cfg: HubConfig, slot: Slot) -> None:
    """A worker process: one fanout node on the shared port (spawned by the supervisor)."""
    from app.run import run_fanout

    _serve_worker(cfg, lambda: run_fanout(cfg, slot))


def demo_worker_main(cfg: HubConfig, slot: Slot) -> None:
    """A worker of ``hub demo --workers``: one node fed by the demo's relay."""
    from app.run import run_demo_worker

    _serve_worker(cfg, lambda: run_demo_worker(cfg, slot))


def _serve_worker(cfg: HubConfig, service: Callable[[], Coroutine[Any, Any, None]]) -> None:
    from app.shutdown import run_service
    from hub.logs import setup_logging

    setup_logging(cfg.log_level)
    # Ctrl-C in a terminal reaches the whole process group: the supervisor says when to
    # stop (SIGTERM), and a worker that stopped on SIGINT too would take that for a
    # second signal and exit at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_service(service, cfg.shutdown_timeout_s, cfg.gc_full_every_s, (signal.SIGTERM,))


# --- the supervisor side ---------------------------------------------------------------


@dataclasses.dataclass
class _Worker:
    index: int
    process: BaseProcess
    started: float
    backoff: Backoff


class Supervisor:
    """Start, watch, restart and stop the workers of one port."""

    def __init__(
        self,
        cfg: HubConfig,
        workers: int,
        entry: Callable[[HubConfig, Slot], None] = worker_main,
        name: str = "fanout",
    ) -> None:
        self.workers = workers
        self.entry = entry
        self.name = name
        self.rundir = Path(tempfile.mkdtemp(prefix=f"hub-{name}-"))
        self.reserved = reserve_port(cfg.fanout.host, cfg.fanout.port)
        self.port: int = self.reserved.getsockname()[1]
        self.cfg = dataclasses.replace(
            cfg, fanout=dataclasses.replace(cfg.fanout, port=self.port, workers=1)
        )
        self.context = multiprocessing.get_context("spawn")
        self.running: dict[int, _Worker] = {}
        self.restarts = 0

    def _spawn(self, index: int, backoff: Backoff | None = None) -> _Worker:
        (self.rundir / f"worker-{index}.json").unlink(missing_ok=True)
        process = self.context.Process(
            target=self.entry,
            args=(self.cfg, Slot(index, self.workers, self.rundir)),
            name=f"hub-{self.name}-worker-{index}",
        )
        process.start()
        worker = _Worker(index, process, time.monotonic(), backoff or Backoff(0.5, 30.0, "spread"))
        self.running[index] = worker
        return worker

    async def start(self) -> None:
        """Every worker up and serving, or ServiceUnavailable with why."""
        for i in range(self.workers):
            self._spawn(i)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all((self.rundir / f"worker-{i}.json").exists() for i in range(self.workers)):
            dead = [w for w in self.running.values() if not w.process.is_alive()]
            if dead:
                raise ServiceError(
                    f"fanout worker {dead[0].index} exited with code {dead[0].process.exitcode}"
                    " while starting (its log lines above say why)"
                )
            if time.monotonic() > deadline:
                raise ServiceError(f"fanout workers not up within {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)

    async def watch(self) -> None:
        """Restart a worker that dies, after a backoff (at once when it had run a while)."""
        while True:
            await asyncio.sleep(0.2)
            for index, worker in list(self.running.items()):
                if worker.process.is_alive():
                    continue
                ran = time.monotonic() - worker.started
                if ran > STABLE_S:
                    worker.backoff.reset()
                delay = worker.backoff.next()
                log.error(
                    "fanout worker died; restarting",
                    extra={
                        "worker": index,
                        "exitcode": worker.process.exitcode,
                        "ran_s": round(ran, 1),
                        "restart_in_s": round(delay, 2),
                    },
                )
                (self.rundir / f"worker-{index}.json").unlink(missing_ok=True)
                del self.running[index]
                asyncio.get_running_loop().call_later(delay, self._restart, index, worker.backoff)

    def _restart(self, index: int, backoff: Backoff) -> None:
        self.restarts += 1
        self._spawn(index, backoff)

    async def stop(self) -> None:
        """SIGTERM every worker, wait for their clean stop (bounded), then clean up."""
        for worker in self.running.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.shutdown_timeout_s
        for worker in self.running.values():
            await asyncio.to_thread(worker.process.join, max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
        self.reserved.close()
        shutil.rmtree(self.rundir, ignore_errors=True)


async def run_workers(cfg: HubConfig, workers: int) -> None:
    """Supervise ``workers`` fanout nodes on cfg.fanout.port until cancelled."""
    from app.run import announce

    supervisor = Supervisor(cfg, workers)
    try:
        await supervisor.start()
        host, port = cfg.fanout.host, supervisor.port
        announce(
            [
                f"hub fanout x{workers} serving ws://{host}:{port}/ws",
                f"  live page http://{host}:{port}/",
                f"  metrics   http://{host}:{port}/metrics (every worker, labelled worker)",
            ]
        )
        await supervisor.watch()
    finally:
        await supervisor.stop()
