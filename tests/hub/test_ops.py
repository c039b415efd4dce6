"""/metrics exports what the process runs: each component's metrics, no one else's."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from hub import ops
from tests.conftest import ROOT
from tests.test_layout import LEVEL


def run(code: str) -> None:
    """Run ``code`` in a fresh interpreter (a process with nothing imported yet)."""
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, check=True)


def test_importing_every_product_module_exports_no_hub_metric() -> None:
    """Every module's metrics live in its component's registry: importing them all adds
    nothing to prometheus_client's global registry, and a process that runs nothing
    exports only the platform metrics (process_*, python_*)."""
    rooms = sorted(LEVEL)
    run(
        f"""
        import importlib, pkgutil
        from prometheus_client import REGISTRY, generate_latest
        from hub import ops
        for room in {rooms!r}:
            pkg = importlib.import_module(room)
            for info in pkgutil.walk_packages(pkg.__path__, room + "."):
                if not info.name.endswith("__main__"):
                    importlib.import_module(info.name)
        assert all(
            not n.startswith("hub_") for names in REGISTRY._collector_to_names.values()
            for n in names
        ), sorted(REGISTRY._names_to_collectors)
        text = generate_latest(ops.PROCESS).decode()
        assert "hub_" not in text, text
        assert "process_resident_memory_bytes" in text and "python_gc_" in text
        """
    )


def test_every_component_names_its_metrics_after_itself() -> None:
    """``hub_<component>_...``: dashboards and alert rules can tell whose a metric is."""
    run(
        f"""
        import importlib, pkgutil
        from hub import ops
        for room in {sorted(LEVEL)!r}:
            pkg = importlib.import_module(room)
            for info in pkgutil.walk_packages(pkg.__path__, room + "."):
                if not info.name.endswith("__main__"):
                    importlib.import_module(info.name)
        counts = {{}}
        for c in ops.COMPONENTS:
            for family in ops.metrics(c).collect():
                assert family.name.startswith(f"hub_{{c}}_"), (c, family.name)
                counts[c] = counts.get(c, 0) + 1
        assert set(counts) == set(ops.COMPONENTS), counts
        """
    )


def test_a_fanout_node_exports_only_the_fanout() -> None:
    run(
        """
        from prometheus_client import generate_latest
        import recorder.service, trading.gateway, bus.kafka_publish  # imported, not run
        from bus.local import MemorySnapshots
        from fanout.node import FanoutNode
        from hub import ops
        from hub.config import FanoutConfig
        FanoutNode(FanoutConfig(), MemorySnapshots())
        text = generate_latest(ops.PROCESS).decode()
        assert ops.running() == ["fanout"]
        assert "hub_fanout_connections" in text
        for other in ("recorder", "orders", "kafka", "feed"):
            assert f"hub_{other}_" not in text, other
        """
    )


def test_an_unknown_component_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="unknown metrics component 'fanuot'"):
        ops.runs("fanuot")


def test_a_running_component_adds_its_registry_once() -> None:
    registry = ops.metrics("recorder")
    probe = Counter("hub_recorder_probe_total", "test probe", registry=registry)
    try:
        probe.inc(3)
        ops.runs("recorder")
        ops.runs("recorder")
        text = generate_latest(ops.PROCESS).decode()
        assert text.count("# TYPE hub_recorder_probe_total counter") == 1
        assert "hub_recorder_probe_total 3.0" in text
    finally:
        registry.unregister(probe)
    assert isinstance(registry, CollectorRegistry)


def test_a_loop_histogram_exports_what_a_prometheus_histogram_does() -> None:
    from prometheus_client import Histogram

    bounds = (0.0001, 0.00025, 0.001, 0.05, 1)
    values = [0.0, 0.0001, 0.00010001, 0.0002, 0.00025, 0.0009, 0.001, 0.3, 1.0, 7.5, -1.0]
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = ops.LoopHistogram("hub_x_seconds", "doc", bounds, ours_registry)
    theirs = Histogram("hub_x_seconds", "doc", buckets=bounds, registry=theirs_registry)
    for v in values:
        ours.observe(v)
        theirs.observe(v)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [line for line in text.splitlines() if "_created" not in line]

    assert lines(ours_registry) == lines(theirs_registry)
    assert 'hub_x_seconds_bucket{le="0.00025"} 6.0' in lines(ours_registry)
