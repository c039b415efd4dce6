"""Feed benchmark: capture replay throughput per venue, and the simulated exchange.

    .venv/bin/python -m bench.bench_feeds [--repeat 5]

Each capture in ../shared/data/captures whose venue has a parser is replayed at --speed max through
the real parser + sync engine + book (orjson, compiled book), and again in a
subprocess of this same run with the standard library's json and the
pure-Python book (HUB_FEED_JSON=stdlib, ORDERBOOK_CORE=python) as the
baseline. Both replays must end with identical summaries. Figures are
medians; the capture files are small, so each run repeats the replay.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.machine import facts

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = Path(os.environ.get("HUB_SHARED_DIR", ROOT.parent / "shared")) / "data" / "captures"


def measure(path: Path, repeat: int) -> dict[str, Any]:
    """Replay ``path`` ``repeat`` times in this process; median frames/s and updates/s."""
    from feedhandler.files.capture import read_capture
    from feedhandler.files.replay import replay_capture

    frames = sum(1 for x in read_capture(path) if x.kind in ("recv", "http"))
    times, summary = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        summary = replay_capture(path)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    updates = sum(s["book_updates"] for s in summary["symbols"].values())
    return {
        "frames_per_s": frames / seconds,
        "updates_per_s": updates / seconds,
        "frames": frames,
        "updates": updates,
        "summary": {
            k: {f: v for f, v in s.items() if f not in ("events",)}
            for k, s in summary["symbols"].items()
        },
    }


def baseline(path: Path, repeat: int) -> dict[str, Any]:
    env = dict(os.environ, HUB_FEED_JSON="stdlib", ORDERBOOK_CORE="python")
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_feeds", "--one", str(path), "--repeat", str(repeat)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def simulator_rate(steps: int) -> float:
    from hub.events import BookUpdate
    from trading.simulator import SimulatedExchange

    x = SimulatedExchange("SIM", "BTC-USD", 1)
    started, n = time.perf_counter(), 0
    for i in range(steps):
        n += sum(isinstance(e, BookUpdate) for e in x.step(i))
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeat)))
        return
    from feedhandler.files.capture import CaptureError
    from feedhandler.files.replay import venue_of

    rows, unsupported = [], []
    for path in sorted(CAPTURES.glob("*.jsonl*")):
        try:
            venue_of(path)
        except CaptureError:
            unsupported.append(path.name.split("_")[0])
            continue
        ours = measure(path, args.repeat)
        base = baseline(path, args.repeat)
        assert ours["summary"] == base["summary"], f"{path.name}: replays disagree"
        rows.append(
            (
                path.name.split("_")[0],
                f"{ours['frames_per_s'] / 1e3:,.0f}k",
                f"{ours['updates_per_s'] / 1e3:,.0f}k",
                f"{base['frames_per_s'] / 1e3:,.0f}k",
                f"{ours['frames_per_s'] / base['frames_per_s']:.1f}x",
            )
        )
    print(facts())
    print()
    print(
        "| capture (--speed max) | frames/s | book updates/s | baseline frames/s "
        "(stdlib json + Python book) | speed-up |"
    )
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if unsupported:
        print(f"| no parser yet: {', '.join(unsupported)} | | | | |")
    rate = simulator_rate(100_000)
    print(
        f"| simulated exchange, book events/s into the engine (with their order changes) | | "
        f"{rate / 1e3:,.0f}k | "
        f"target >= 100k | {'met' if rate >= 100_000 else 'NOT met'} |"
    )


if __name__ == "__main__":
    main()
