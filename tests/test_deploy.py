"""docker-compose.yml, Prometheus and Grafana files agree with the code they deploy."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

import fanout.node
import recorder.service
import trading.feed
from hub.config import load_config
from hub.ops import COMPONENTS, metrics
from tests.conftest import ROOT

HUB_SERVICES = ("migrate", "feed", "fanout", "recorder")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _compose_command() -> list[str] | None:
    """docker compose (v2 plugin) if it works, else Debian's docker-compose (v1), else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose CLI installed")
def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    assert command is not None
    out = subprocess.run([*command, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_compose_runs_every_part_of_the_distributed_hub() -> None:
    services = compose()["services"]
    assert {"kafka", "timescaledb", "redis", "prometheus", "grafana", *HUB_SERVICES} <= set(
        services
    )
    assert services["fanout"]["deploy"]["replicas"] == 2
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    kafka_env = services["kafka"]["environment"]
    assert "broker,controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper


def test_compose_environment_is_valid_hub_config() -> None:
    services = compose()["services"]
    for name in HUB_SERVICES:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        cfg = load_config(env=env)  # raises ConfigError on any unknown or mistyped key
        assert cfg.kafka.idempotent is True and cfg.kafka.acks == "all"
        assert cfg.kafka.bootstrap == "kafka:9092"
    dockerfile = (ROOT / "Dockerfile").read_text()
    env_line = next(line for line in dockerfile.splitlines() if line.startswith("ENV "))
    pairs = dict(item.split("=", 1) for item in env_line[4:].split())
    cfg = load_config(env=pairs)
    assert cfg.fanout.host == cfg.feed.metrics_host == cfg.recorder.metrics_host == "0.0.0.0"


def test_prometheus_scrapes_each_process_on_its_configured_port() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    defaults = load_config(env={})
    assert jobs["feed"]["static_configs"][0]["targets"] == [f"feed:{defaults.feed.metrics_port}"]
    assert jobs["recorder"]["static_configs"][0]["targets"] == [
        f"recorder:{defaults.recorder.metrics_port}"
    ]
    assert jobs["fanout"]["dns_sd_configs"][0]["port"] == defaults.fanout.port


def test_grafana_dashboard_uses_only_metrics_the_hub_exports() -> None:
    assert fanout.node and trading.feed and recorder.service  # their metrics are registered
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exported = {
        f.name + sfx
        for c in COMPONENTS
        for f in metrics(c).collect()
        for sfx in suffixes.get(f.type, ("",))
    }
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/mdhub.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\bhub_[a-z_]+", e)}
    assert len(names) >= 10
    missing = sorted(names - exported)
    assert missing == []
