"""Find the hub's limit: subscribers in steps until the book latency's p99 passes a bound.

    python -m loadtests.limit --host ws://127.0.0.1:8765 --p99-ms 100 \\
        --start-users 20 --step-users 20 --max-users 400 --step-seconds 20 --max-seconds 600

Each step is one bounded headless locust run of ``loadtests/locustfile.py``
(``-u`` users spawned at ``--spawn-rate``, ``-t --step-seconds``, ``--processes``
passed on) with its stats CSV in ``--out`` (default a temporary directory). The
step's numbers come from that CSV: ``update book`` p50 and p99 (locust's
approximated percentiles, ms from the hub's ``ts_recv`` to the client), the
updates per second of every ``update ...`` entry, the failures (connect, list,
subscribe, snapshots, gaps, checksums; everything but the CPU entry) and
whether a locust process reported ``worker cpu saturated``. The run stops at
the first step whose p99 passes ``--p99-ms`` or that has a failure, or when
the next step would pass ``--max-users`` or ``--max-seconds``. It prints a
table of the steps and one line starting ``limit:``, e.g.

    limit: 120 connections at 41500 updates/s before p99 > 100 ms (140: p99 180 ms)

A step where locust itself was saturated says so (``locust cpu: saturated``):
its latencies are the load generator's, so run again with ``--processes``.
Only a hub on this machine (127.0.0.1 or localhost) is measured: the latency
compares the hub's clock with the client's.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from loadtests.measure import CPU_ENTRY

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = ("127.0.0.1", "localhost")
BOOK = "update book"
STARTUP_S = 3.0
"""A locust run's own start and stop, counted against ``--max-seconds``."""


@dataclass
class Step:
    users: int
    updates_per_s: float
    book_p50_ms: float
    book_p99_ms: float
    book_count: int
    failures: int
    cpu_saturated: bool

    def over(self, p99_ms: float) -> str | None:
        """Why this step is past the limit, or None."""
        if self.failures:
            return f"{self.failures} failures"
        if self.book_count == 0:
            return "no book updates"
        if self.book_p99_ms > p99_ms:
            return f"p99 > {p99_ms:g} ms"
        return None


def read_step(users: int, stats_csv: Path) -> Step:
    """A step's numbers from locust's ``<prefix>_stats.csv``."""
    rows = {r["Name"]: r for r in csv.DictReader(stats_csv.open())}
    book = rows.get(BOOK, {})
    updates = sum(float(r["Requests/s"]) for n, r in rows.items() if n.startswith("update "))
    failures = sum(
        int(r["Failure Count"]) for n, r in rows.items() if n not in ("Aggregated", CPU_ENTRY)
    )
    return Step(
        users=users,
        updates_per_s=updates,
        book_p50_ms=float(book.get("50%", "0") or 0),
        book_p99_ms=float(book.get("99%", "0") or 0),
        book_count=int(book.get("Request Count", "0") or 0),
        failures=failures,
        cpu_saturated=int(rows.get(CPU_ENTRY, {}).get("Request Count", "0") or 0) > 0,
    )


def run_step(args: argparse.Namespace, users: int, out: Path) -> Step:
    """One bounded headless locust run at ``users`` connections."""
    prefix = out / f"step-{users}"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(args.spawn_rate),
        "-t",
        f"{args.step_seconds:g}s",
        "--stop-timeout",
        "5",
        "--host",
        args.host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    subprocess.run(
        cmd,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=args.step_seconds + 60,
        check=False,  # failures exit 1; the CSV says what they were
    )
    return read_step(users, prefix.with_name(f"{prefix.name}_stats.csv"))


def table(steps: list[Step], p99_ms: float) -> str:
    lines = [
        f"{'users':>6} {'updates/s':>10} {'book p50 ms':>12} {'book p99 ms':>12} "
        f"{'failures':>9} {'locust cpu':>11}  verdict"
    ]
    for s in steps:
        lines.append(
            f"{s.users:>6} {s.updates_per_s:>10.0f} {s.book_p50_ms:>12g} {s.book_p99_ms:>12g} "
            f"{s.failures:>9} {'saturated' if s.cpu_saturated else 'ok':>11}  "
            f"{s.over(p99_ms) or 'ok'}"
        )
    return "\n".join(lines)


def limit_line(steps: list[Step], p99_ms: float) -> str:
    """The one-line answer: the last step within the bound, before the first past it."""
    good = [s for s in steps if s.over(p99_ms) is None]
    bad = next((s for s in steps if s.over(p99_ms) is not None), None)
    saturated = any(s.cpu_saturated for s in steps)
    note = " (locust was CPU-saturated: rerun with --processes)" if saturated else ""
    if bad is None:
        last = steps[-1]
        return (
            f"limit: not reached: {last.users} connections at {last.updates_per_s:.0f} "
            f"updates/s with p99 {last.book_p99_ms:g} ms <= {p99_ms:g} ms{note}"
        )
    why = bad.over(p99_ms)
    detail = f"p99 {bad.book_p99_ms:g} ms" if why and why.startswith("p99") else why
    if not good:
        return f"limit: below {bad.users} connections: {why} at the first step ({detail}){note}"
    last = good[-1]
    return (
        f"limit: {last.users} connections at {last.updates_per_s:.0f} updates/s before "
        f"p99 > {p99_ms:g} ms (at {bad.users}: {detail}){note}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="ws://127.0.0.1:8765")
    p.add_argument("--p99-ms", type=float, default=100.0, help="bound on update book p99")
    p.add_argument("--start-users", type=int, default=20)
    p.add_argument("--step-users", type=int, default=20)
    p.add_argument("--max-users", type=int, default=400)
    p.add_argument("--step-seconds", type=float, default=20.0)
    p.add_argument("--max-seconds", type=float, default=600.0, help="bound on the whole run")
    p.add_argument("--spawn-rate", type=float, default=50.0, help="users started per second")
    p.add_argument("--processes", type=int, default=0, help="locust --processes per step")
    p.add_argument("--out", type=Path, help="where the steps' CSV files go")
    args = p.parse_args(argv)
    if urlsplit(args.host).hostname not in LOCAL_HOSTS:
        p.error("only a hub on this machine (ws://127.0.0.1:PORT) is measured")
    if min(args.start_users, args.step_users, args.max_users) < 1 or args.step_seconds <= 0:
        p.error("users and step seconds must be positive")
    out = args.out or Path(tempfile.mkdtemp(prefix="hub-limit-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps: list[Step] = []
    users = args.start_users
    while users <= args.max_users:
        if time.monotonic() - started + args.step_seconds + STARTUP_S > args.max_seconds:
            break
        step = run_step(args, users, out)
        steps.append(step)
        print(
            f"step {len(steps)}: {users} users, book p99 {step.book_p99_ms:g} ms", file=sys.stderr
        )
        if step.over(args.p99_ms) is not None:
            break
        users += args.step_users
    if not steps:
        print("limit: no step fits in --max-seconds", file=sys.stderr)
        return 2
    print(table(steps, args.p99_ms))
    print(limit_line(steps, args.p99_ms))
    print(f"(CSV files in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
