"""The locust users run headless against the embedded hub, bounded in time: subscribers
keep exact books, order traders get an answer to every command."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def run_locust(locustfile: str, host: str, users: int, prefix: Path) -> dict[str, dict[str, str]]:
    """A bounded headless run (6 s); the stats rows by name."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtests" / locustfile),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            "6s",
            "--stop-timeout",
            "6",
            "--host",
            host,
            "--csv",
            str(prefix),
            "--only-summary",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    stats = prefix.with_name(f"{prefix.name}_stats.csv")
    return {r["Name"]: r for r in csv.DictReader(stats.open())}


def test_locust_subscribers_receive_exact_books(hub_process: Any, tmp_path: Path) -> None:
    demo = hub_process("demo", "--port", "0", "--rate", "300")
    port = int(demo.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws").group(1))
    rows = run_locust("locustfile.py", f"ws://127.0.0.1:{port}", 8, tmp_path / "locust")
    assert int(rows["snapshot"]["Request Count"]) >= 8  # every user got its snapshot
    assert int(rows["book"]["Request Count"]) > 100
    assert int(rows["Aggregated"]["Failure Count"]) == 0  # no gaps, checksums right, not crossed
    assert int(rows["subscribed"]["Request Count"]) == 8
    assert demo.stop() == 0


def test_locust_order_traders_get_every_answer(hub_process: Any, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    journal = tmp_path / "orders.journal"
    demo = hub_process(
        "demo", "--port", "0", "--orders", "--orders-port", str(port), "--journal", str(journal)
    )
    demo.wait_for(r"order entry ws://")
    rows = run_locust("orders.py", f"ws://127.0.0.1:{port}", 6, tmp_path / "locust-orders")
    assert int(rows["new"]["Request Count"]) > 50
    assert int(rows["cancel"]["Request Count"]) > 20
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert demo.stop() == 0
    news = [line for line in journal.read_text().splitlines() if '["new",' in line]
    assert len(news) >= int(rows["new"]["Request Count"])  # every acknowledged order is logged
