"""scripts/services.sh: private instances, idempotent up, down leaves nothing running."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "services.sh"
PORTS = {"HUB_KAFKA_PORT": 39192, "HUB_PG_PORT": 35532, "HUB_REDIS_PORT": 36479}


def is_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def running(pid: int) -> bool:
    """True while the process exists and is not a zombie awaiting its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def services(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), action], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.services
def test_up_twice_then_down_leaves_nothing() -> None:
    # Under the project (not /tmp/pytest-of-*, mode 0700): PostgreSQL runs as the
    # postgres user when we are root and must reach its data directory.
    data = ROOT / ".cache" / f"services-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, HUB_SERVICES_DIR=str(data), **{k: str(v) for k, v in PORTS.items()})
    assert not any(is_open(p) for p in PORTS.values()), "test ports must be free"
    try:
        first = services("up", env)
        assert first.returncode == 0, first.stderr
        assert all(is_open(p) for p in PORTS.values())
        pids = {f: (data / f).read_text() for f in ("kafka/tansu.pid", "redis/redis.pid")}
        second = services("up", env)
        assert second.returncode == 0, second.stderr
        assert second.stdout.count("already running") == 3
        assert {f: (data / f).read_text() for f in pids} == pids
        status = services("status", env)
        assert status.returncode == 0 and status.stdout.count(" up ") == 3
    finally:
        down = services("down", env)
    assert down.returncode == 0, down.stderr
    assert not any(is_open(p) for p in PORTS.values())
    status = services("status", env)
    assert status.returncode == 1 and status.stdout.count(" down ") == 3
    leftovers = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True).stdout
    assert leftovers == ""
    for pid in pids.values():
        assert not running(int(pid))
    shutil.rmtree(data, ignore_errors=True)
