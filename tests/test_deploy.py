"""docker-compose.yml, Prometheus and Grafana files agree with the code they deploy."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

import fanout.node
import recorder.service
import trading.feed
import trading.gateway
from bus.local import InProcessBus
from bus.output import FeedStats
from feedhandler.venues import VENUES
from feedhandler.venues.runner import LiveRunner
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


def exported_metrics() -> dict[str, str]:
    """Every series name the hub's components export, with its family's type (the
    scrape-time feed statistics too, which appear with the first live runner)."""
    assert fanout.node and trading.feed and recorder.service and trading.gateway
    stats = FeedStats(CollectorRegistry())
    spec = VENUES["kraken"]
    stats.add(LiveRunner(spec.parser(), spec.url, ["BTC/USD"], InProcessBus()))
    families = [f for c in COMPONENTS for f in metrics(c).collect()] + list(stats.collect())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name + sfx: f.type for f in families for sfx in suffixes.get(f.type, ("",))}


def dashboard_exprs() -> dict[str, list[str]]:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/mdhub.json").read_text())
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}


def alert_exprs() -> dict[str, str]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def misuse(expr: str, exported: dict[str, str]) -> list[str]:
    """What in ``expr`` is not a metric the hub exports, or uses one against its type: a
    rate of a gauge, a quantile of something that is not a histogram's buckets."""
    problems = [
        f"{n}: not exported" for n in re.findall(r"\bhub_[a-z_]+", expr) if n not in exported
    ]
    for n in re.findall(r"\b(?:rate|increase)\((hub_[a-z_]+)", expr):
        if exported.get(n) not in ("counter", "histogram"):
            problems.append(f"{n}: rate/increase of a {exported.get(n)}")
    for n in re.findall(r"histogram_quantile\([^,]+,[^)]*?(hub_[a-z_]+)", expr):
        if not (n.endswith("_bucket") and exported.get(n) == "histogram"):
            problems.append(f"{n}: histogram_quantile of something not a histogram's buckets")
    return problems


def test_grafana_dashboard_uses_only_metrics_the_hub_exports_as_their_type_allows() -> None:
    exported = exported_metrics()
    panels = dashboard_exprs()
    names = {n for exprs in panels.values() for e in exprs for n in re.findall(r"\bhub_[a-z_]+", e)}
    assert len(names) >= 10
    assert {t: p for t, exprs in panels.items() for e in exprs if (p := misuse(e, exported))} == {}


def test_each_panel_shows_what_its_title_says() -> None:
    """A panel titled after two things plots both; "Database up" reads the recorders' own
    gauge (only recorders export it: tests/hub/test_ops.py)."""
    for title, exprs in dashboard_exprs().items():
        text = " ".join(exprs)
        if " and " in title.lower():
            for word in title.lower().replace(" and ", ",").split(","):
                stem = word.strip().rstrip("s")
                assert stem in text, (title, stem, text)
    assert dashboard_exprs()["Database up"] == ["min(hub_recorder_database_up)"]


def test_alert_rules_use_only_metrics_the_hub_exports() -> None:
    exported = exported_metrics()
    alerts = alert_exprs()
    assert {
        "HubVenueBookStale",
        "HubFeedGapsOrResyncs",
        "HubRecorderLagging",
        "HubDatabaseDown",
        "HubSlowClientDisconnects",
        "HubOrderRejectSpike",
    } <= set(alerts)
    assert {a: p for a, e in alerts.items() if (p := misuse(e, exported))} == {}
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert prom["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) absent")
def test_promtool_accepts_the_config_and_the_rules_fire_as_tested() -> None:
    deploy = ROOT / "deploy/prometheus"
    for args in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        out = subprocess.run(["promtool", *args], cwd=deploy, capture_output=True, text=True)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
