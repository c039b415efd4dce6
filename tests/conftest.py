"""Shared fixtures: the local services, throwaway databases, and hub processes."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HUB_SHARED_DIR", ROOT.parent / "shared"))
CAPTURES = SHARED / "data" / "captures"
if not CAPTURES.is_dir():
    raise RuntimeError(
        f"recorded venue captures not found at {CAPTURES}: put the shared/ "
        "folder beside the project or set HUB_SHARED_DIR"
    )
HUB = [sys.executable, "-m", "app.cli"]
KAFKA = os.environ.get("HUB_TEST_KAFKA", "127.0.0.1:39092")
REDIS = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:36379/0")
PG_ADMIN = os.environ.get("HUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:35432/postgres")


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """Addresses of the local Kafka, Redis and PostgreSQL; fail loudly when they are down."""
    needed = {
        "Kafka": KAFKA,
        "Redis": REDIS.split("//")[1].split("/")[0],
        "PostgreSQL": PG_ADMIN.split("@")[1].split("/")[0],
    }
    down = [f"{name} ({addr})" for name, addr in needed.items() if not _port_open(addr)]
    if down:
        pytest.fail(f"services down: {', '.join(down)}; start them with: hub services up")
    return {"kafka": KAFKA, "redis": REDIS, "postgres_admin": PG_ADMIN}


def stack_env(services: dict[str, str], unique: str, kafka: str = "") -> dict[str, str]:
    """The environment of a hub process on the local Kafka (or ``kafka``) and Redis, its
    topics and keys named apart by ``unique``."""
    return {
        "HUB_KAFKA__BOOTSTRAP": kafka or services["kafka"],
        "HUB_KAFKA__TOPIC_PREFIX": unique,
        "HUB_REDIS__URL": services["redis"],
        "HUB_REDIS__KEY_PREFIX": unique,
    }


@pytest.fixture
def database(services: dict[str, str]) -> Iterator[str]:
    """A fresh, empty database; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services["postgres_admin"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = services["postgres_admin"].rsplit("/", 1)[0] + f"/{name}"
    yield dsn
    with psycopg.connect(services["postgres_admin"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def unique() -> str:
    """A fresh name for topics, Redis keys and consumer groups of one test."""
    return f"t{uuid.uuid4().hex[:10]}"


class HubProcess:
    """A ``hub`` subcommand run as a real process, with its output captured."""

    def __init__(self, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.args = args
        name = args[0]
        self.stderr_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [*HUB, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait for a stdout line matching ``pattern``; fail with the process's stderr."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(
            f"hub {self.args[0]} never printed {pattern!r}; "
            f"exit={self.proc.poll()} stderr:\n{self.stderr()}"
        )

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text()[-4000:]

    def wait(self, timeout: float = 60) -> int:
        """Wait for a one-shot command to finish by itself; return its exit code."""
        code = self.proc.wait(timeout)
        self._pump_thread.join(5)
        self._stderr.close()
        return code

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Where is it stuck? The hub CLI dumps its stacks on SIGUSR1 (into stderr).
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(1)
                self.proc.kill()
                self.proc.wait()
        if not self._stderr.closed:
            self._stderr.close()
        return self.proc.returncode


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[object]:
    """Start hub subcommands; all are stopped at the end of the test."""
    started: list[HubProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> HubProcess:
        p = HubProcess(list(args), {**os.environ, **(env or {})}, tmp_path)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
