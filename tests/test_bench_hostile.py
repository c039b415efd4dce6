"""The hostile-client benchmark runs (small sizes) and its node ends where it started: it
cannot rot."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_bench_hostile_quick_prints_both_tables() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_hostile", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("CPU: ")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert "baseline: no hostile client" in rows and "hostile burst, whole run" in rows
    assert "40 requests x 50 entries, 2000 snapshots received" in out.stdout
    (left,) = [line for key, line in rows.items() if key.startswith("2 s after they left")]
    cells = [c.strip() for c in left.strip("|").split("|")]
    assert cells[2:4] == ["0", "0"]  # no view, no view history left
