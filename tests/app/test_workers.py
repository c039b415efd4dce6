"""The supervisor's pieces that need no services: worker counts, the port reservation and
the port-wide /metrics merge (tests/test_fanout_workers.py runs the real thing)."""

from __future__ import annotations

import os
import socket

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from app.workers import _Labelled, reserve_port, worker_count
from hub.errors import ConfigError


def test_worker_count_zero_is_one_per_core_and_bad_counts_name_the_setting() -> None:
    assert worker_count(3) == 3
    assert worker_count(0) == (os.cpu_count() or 1)
    for bad in (-1, 10_000):
        with pytest.raises(ConfigError, match=r"fanout\.workers"):
            worker_count(bad)


def test_the_reserved_port_takes_no_connections_but_workers_can_join_it() -> None:
    held = reserve_port("127.0.0.1", 0)
    port = held.getsockname()[1]
    try:
        with pytest.raises(ConnectionRefusedError):  # bound, not listening
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))
        worker.listen()
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        worker.close()
    finally:
        held.close()


def exposition(connections: int, updates: int) -> str:
    registry = CollectorRegistry()
    Gauge("hub_fanout_connections", "Open", registry=registry).set(connections)
    Counter("hub_fanout_updates", "Updates", ["symbol"], registry=registry).labels("X").inc(updates)
    return generate_latest(registry).decode()


def test_port_wide_metrics_label_every_sample_with_its_worker_once_per_family() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Labelled({"0": exposition(3, 10), "1": exposition(5, 7)}))
    text = generate_latest(registry).decode()
    assert text.count("# TYPE hub_fanout_connections gauge") == 1
    assert text.count("# TYPE hub_fanout_updates_total counter") == 1
    assert 'hub_fanout_connections{worker="0"} 3.0' in text
    assert 'hub_fanout_connections{worker="1"} 5.0' in text
    assert 'hub_fanout_updates_total{symbol="X",worker="0"} 10.0' in text
    assert 'hub_fanout_updates_total{symbol="X",worker="1"} 7.0' in text
