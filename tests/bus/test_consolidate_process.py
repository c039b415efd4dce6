"""``hub consolidate`` as a real process on the local Kafka and Redis serves /metrics and
/healthz like every long-running process, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.conftest import stack_env


@pytest.mark.services
def test_hub_consolidate_serves_health_and_metrics(
    hub_process: Any, unique: str, services: dict[str, str]
) -> None:
    proc = hub_process(
        "consolidate", "--metrics-port", "0", "--symbol", "BTC-USD",
        env=stack_env(services, unique),
    )  # fmt: skip
    port = int(proc.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        health = json.loads(r.read())
        assert r.status == 200
    assert health["ok"] is True and health["streams"] == {} and health["refused"] == {}
    assert health["kafka"]["ok"] is True
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert "hub_kafka_" in text
    assert proc.stop() == 0
