"""The locust users run headless against the embedded hub, bounded in time: subscribers
keep exact books and time each step on its own, a node that never completes a handshake
shows as connect failures, order traders time every command to its own answer, and the
limit script steps users up and says where it stopped."""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.limit import Step, limit_line, read_step
from loadtests.measure import CPU_ENTRY, CpuMonitor, answers, cpu_share
from tests.conftest import ROOT

Rows = dict[str, dict[str, str]]


def run_locust(
    locustfile: str,
    host: str,
    users: int,
    prefix: Path,
    env: dict[str, str] | None = None,
    ok: bool = True,
) -> tuple[Rows, str]:
    """A bounded headless run (6 s); the stats rows by name and locust's log."""
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
        env={**os.environ, **(env or {})},
    )
    if ok:
        assert out.returncode == 0, out.stderr[-3000:]
    else:
        assert out.returncode != 0, out.stderr[-3000:]  # locust exits 1 on failures
    stats = prefix.with_name(f"{prefix.name}_stats.csv")
    return {r["Name"]: r for r in csv.DictReader(stats.open())}, out.stderr


def count(rows: Rows, name: str, column: str = "Request Count") -> int:
    return int(rows[name][column])


def failures_but_cpu(rows: Rows) -> dict[str, int]:
    """Failures per entry, leaving out the load generator's own CPU warning (this machine
    is shared: locust may be saturated without the hub being wrong)."""
    return {
        n: int(r["Failure Count"])
        for n, r in rows.items()
        if n not in ("Aggregated", CPU_ENTRY) and int(r["Failure Count"])
    }


def test_locust_subscribers_time_each_step(hub_process: Any, tmp_path: Path) -> None:
    demo = hub_process("demo", "--port", "0", "--rate", "300")
    port = int(demo.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws").group(1))
    rows, _ = run_locust("locustfile.py", f"ws://127.0.0.1:{port}", 8, tmp_path / "locust")
    assert failures_but_cpu(rows) == {}  # no refusals, gaps, checksums wrong, crossed books
    assert count(rows, "connect") == 8  # one handshake each, none lost
    assert count(rows, "list") == 8
    assert count(rows, "subscribe") == 8
    assert count(rows, "subscribe→snapshot") == 16  # two books per user, each timed once
    assert float(rows["subscribe→snapshot"]["Average Response Time"]) > 0
    assert count(rows, "update book") > 100
    assert not [n for n in rows if n in ("book", "snapshot", "subscribed")]  # no bare types
    assert demo.stop() == 0


@pytest.fixture
def silent_node() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join()
    for s in [*held, server]:
        s.close()


def test_locust_counts_handshake_timeouts_as_failures(silent_node: int, tmp_path: Path) -> None:
    env = {"HUB_LOAD_CONNECT_TIMEOUT": "1", "HUB_LOAD_RETRY_S": "0.5"}
    rows, log = run_locust(
        "locustfile.py", f"ws://127.0.0.1:{silent_node}", 5, tmp_path / "s", env, ok=False
    )
    tries = count(rows, "connect")
    assert tries >= 5  # every user tried, and retried
    assert count(rows, "connect", "Failure Count") == tries  # each one a failure
    assert count(rows, "Aggregated", "Failure Count") == tries
    assert "update book" not in rows
    assert "TimeoutError" in log
    assert "Traceback" not in log  # failures, not unhandled exceptions


def test_locust_order_traders_time_each_request_to_its_answer(
    hub_process: Any, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    journal = tmp_path / "orders.journal"
    demo = hub_process(
        "demo", "--port", "0", "--orders", "--orders-port", str(port), "--journal", str(journal)
    )
    demo.wait_for(r"order entry ws://")
    rows, log = run_locust("orders.py", f"ws://127.0.0.1:{port}", 6, tmp_path / "locust-orders")
    assert failures_but_cpu(rows) == {}
    assert count(rows, "logon") == 6
    assert count(rows, "new") > 50
    assert count(rows, "cancel") > 20
    assert count(rows, "replace") > 5
    # timed to their own answer (a journal commit away), not to a report already buffered
    for op in ("new", "cancel", "replace"):
        assert float(rows[op]["Median Response Time"]) > 0, op
        assert float(rows[op]["Average Response Time"]) > 0, op
    found = re.search(r"order requests: sent (\d+), answered (\d+), unanswered (\d+)", log)
    assert found, log[-2000:]
    sent, answered, unanswered = map(int, found.groups())
    assert unanswered == 0
    assert sent == answered == sum(count(rows, op) for op in ("new", "cancel", "replace"))
    assert demo.stop() == 0
    news = [line for line in journal.read_text().splitlines() if '["new",' in line]
    assert len(news) >= count(rows, "new")  # every acknowledged order is logged


def test_limit_script_steps_and_reports(hub_process: Any, tmp_path: Path) -> None:
    demo = hub_process("demo", "--port", "0", "--rate", "200")
    port = int(demo.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws").group(1))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.limit",
            "--host",
            f"ws://127.0.0.1:{port}",
            "--p99-ms",
            "100000",  # not reached: the bound on users ends it
            "--start-users",
            "2",
            "--step-users",
            "2",
            "--max-users",
            "4",
            "--step-seconds",
            "5",
            "--max-seconds",
            "60",
            "--out",
            str(tmp_path / "limit"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    table = [line.split() for line in out.stdout.splitlines() if re.match(r"\s+\d+ ", line)]
    assert [int(r[0]) for r in table] == [2, 4]
    for r in table:
        assert float(r[1]) > 0  # updates/s
        assert int(r[4]) == 0  # failures
        assert r[-1] == "ok"
    limit = [line for line in out.stdout.splitlines() if line.startswith("limit: ")]
    assert len(limit) == 1
    assert limit[0].startswith("limit: not reached: 4 connections at ")
    assert sorted(p.name for p in (tmp_path / "limit").glob("*_stats.csv")) == [
        "step-2_stats.csv",
        "step-4_stats.csv",
    ]
    assert demo.stop() == 0


def test_limit_script_refuses_other_hosts() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadtests.limit", "--host", "ws://10.1.2.3:8765"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "only a hub on this machine" in out.stderr


def step(users: int, p99: float, failures: int = 0, cpu: bool = False) -> Step:
    return Step(users, users * 1000.0, p99 / 4, p99, users * 500, failures, cpu)


def test_limit_line_names_the_last_step_within_the_bound() -> None:
    steps = [step(10, 20), step(20, 60), step(30, 150)]
    assert [s.over(100) for s in steps] == [None, None, "p99 > 100 ms"]
    assert limit_line(steps, 100) == (
        "limit: 20 connections at 20000 updates/s before p99 > 100 ms (at 30: p99 150 ms)"
    )
    assert limit_line([step(10, 20), step(20, 30, failures=3)], 100) == (
        "limit: 10 connections at 10000 updates/s before p99 > 100 ms (at 20: 3 failures)"
    )
    assert limit_line([step(10, 500, cpu=True)], 100) == (
        "limit: below 10 connections: p99 > 100 ms at the first step (p99 500 ms)"
        " (locust was CPU-saturated: rerun with --processes)"
    )
    assert limit_line([step(10, 20)], 100).startswith("limit: not reached: 10 connections")


def test_read_step_takes_updates_failures_and_cpu_from_the_csv(tmp_path: Path) -> None:
    stats = tmp_path / "s_stats.csv"
    head = "Type,Name,Request Count,Failure Count,Requests/s,50%,99%\n"
    stats.write_text(
        head
        + "WS,connect,5,1,0.5,10,20\n"
        + "WS,update book,900,0,90.0,8,40\n"
        + "WS,update trade,100,2,10.0,9,30\n"
        + f"CPU,{CPU_ENTRY},2,2,0.1,95,99\n"
        + ",Aggregated,1007,5,100.6,8,40\n"
    )
    got = read_step(5, stats)
    assert got == Step(5, 100.0, 8.0, 40.0, 900, 3, True)


def test_cpu_monitor_flags_windows_over_the_limit() -> None:
    assert cpu_share(5.0, 4.6) == pytest.approx(0.92)
    assert cpu_share(0.0, 1.0) == 0.0
    clock = {"wall": 0.0, "cpu": 0.0}
    monitor = CpuMonitor(0.9, wall=lambda: clock["wall"], cpu=lambda: clock["cpu"])
    shares = []
    for wall, cpu in [(5, 2), (10, 6.75), (15, 11.25), (20, 11.5)]:
        clock.update(wall=wall, cpu=cpu)
        shares.append(monitor.sample())
    assert shares[0] is None  # 40 % of a core
    assert shares[1] == pytest.approx(0.95)
    assert shares[2] is None  # exactly 90 %: not over
    assert shares[3] is None
    assert monitor.saturated_windows == 1


def exec_report(cl: str, kind: str, reason: str | None = None) -> dict[str, Any]:
    return {"type": "exec", "cl_ord_id": cl, "exec_type": kind, "reason": reason}


def test_only_a_requests_own_answer_closes_its_timer() -> None:
    pending = {("cancel", "a1"): 1.0}
    # a fill of the very order, buffered before the cancel was sent, is not its answer
    assert answers(exec_report("a1", "fill"), pending) is None
    assert answers(exec_report("a1", "partial_fill"), pending) is None
    assert answers(exec_report("a1", "cancelled", "self_trade"), pending) is None
    assert answers(exec_report("b7", "cancelled", "user_cancel"), pending) is None  # another
    assert answers(exec_report("a1", "accepted"), pending) is None  # its new, answered before
    assert answers(exec_report("a1", "cancelled", "user_cancel"), pending) == ("cancel", "a1")
    # refusals of cancels and replaces carry no cl_ord_id: the oldest of that op
    assert answers({"type": "reject", "op": "cancel", "reason": "too_late"}, pending) == (
        "cancel",
        "a1",
    )
    assert answers({"type": "reject", "op": "replace", "reason": "too_late"}, pending) is None
    replace = {("replace", "a2"): 1.0}
    assert answers(exec_report("a2", "replaced", "self_trade"), replace) is None
    assert answers(exec_report("a2", "replaced"), replace) == ("replace", "a2")
    assert answers(exec_report("a2", "rejected", "not_replaceable"), replace) == ("replace", "a2")
    new = {("new", "a3"): 1.0}
    assert answers(exec_report("a3", "accepted"), new) == ("new", "a3")
    bad = {"type": "reject", "op": "new", "reason": "price_collar", "cl_ord_id": "a3"}
    assert answers(bad, new) == ("new", "a3")
    assert answers({**bad, "cl_ord_id": "zz"}, new) is None  # names another order
    assert answers({"type": "status", "cl_ord_id": "a3"}, new) is None
