"""``hub replay capture`` (a real CLI process) on a capture with bad input: one depth update
with a 70-digit price, a truncated line and a line that is not JSON. The replay reports
each with its line number and goes on; the symbols the bad input touched end stale, every
other symbol's summary equals the clean replay's, and ``--check`` refuses the file."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import zstandard

from tests.conftest import CAPTURES, HUB, ROOT

CAPTURE = CAPTURES / "binance-spot_4-symbols_2021-10-12.jsonl.zst"
UNTOUCHED = ("LRC-BTC", "RUNE-EUR")


def replay(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUB, "replay", "capture", str(path), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def depth_lines(lines: list[str], stream: str) -> list[int]:
    return [
        i
        for i, line in enumerate(lines)
        if f'"{stream}@depth' in line and json.loads(line).get("t") == "recv"
    ]


def write_bad_capture(tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    raw = zstandard.ZstdDecompressor().stream_reader(CAPTURE.open("rb")).read()
    lines = io.StringIO(raw.decode()).read().splitlines()
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(lines) + "\n")
    nkn, blz = depth_lines(lines, "nknusdt")[10], depth_lines(lines, "blzeth")[2]
    obj = json.loads(lines[nkn])
    frame = json.loads(obj["data"])
    side = "b" if frame["data"]["b"] else "a"
    frame["data"][side][0][0] = "9" * 70
    obj["data"] = json.dumps(frame)
    lines[nkn] = json.dumps(obj)
    lines[blz] = lines[blz][: len(lines[blz]) // 2]
    garbage = blz + 5
    lines.insert(garbage, "this line is not JSON")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    return clean, bad, {"price": nkn + 1, "truncated": blz + 1, "garbage": garbage + 1}


def test_bad_frames_are_reported_with_line_numbers_and_the_replay_goes_on(
    tmp_path: Path,
) -> None:
    clean_path, bad_path, at = write_bad_capture(tmp_path)
    out = replay(bad_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    summary: dict[str, Any] = json.loads(out.stdout)
    clean: dict[str, Any] = json.loads(replay(clean_path).stdout)
    assert clean["malformed"] == 0
    assert (summary["malformed"], summary["bad_lines"]) == (3, 2)
    problems = summary["problems"]
    assert len(problems) == 3
    assert problems[0].startswith(f"bad.jsonl line {at['price']}: frame: range: price")
    assert problems[1].startswith(f"bad.jsonl line {at['truncated']}: unreadable: ")
    assert problems[2].startswith(f"bad.jsonl line {at['garbage']}: unreadable: ")
    nkn, blz = summary["symbols"]["NKN-USDT"], summary["symbols"]["BLZ-ETH"]
    assert (nkn["live"], nkn["stale_reason"]) == (False, "malformed range")
    assert (blz["live"], blz["stale_reason"], blz["gaps"]) == (False, "gap", 1)
    for symbol in UNTOUCHED:
        assert summary["symbols"][symbol] == clean["symbols"][symbol], symbol
        assert summary["symbols"][symbol]["live"]
    assert str(bad_path) in out.stderr and f"line {at['price']}" in out.stderr

    checked = replay(bad_path, "--check")
    assert checked.returncode == 1
    assert "3 malformed input(s), first: bad.jsonl line" in checked.stderr
