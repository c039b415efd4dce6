"""``hub sample DIR``: every command it prints runs and replays to the book the file was
written from (checked against an independent source each time: the engine that wrote the
LOBSTER and Databento files, the pure-Python ITCH twin)."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from feedhandler.files import sample
from feedhandler.files.capture_write import write_gemini_capture
from feedhandler.files.databento_write import session
from feedhandler.files.lobster import EMPTY_ASK, EMPTY_BID
from orderbook_core._pyitch import ItchReplay as PyItchReplay
from tests.conftest import HUB, ROOT


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    folder = tmp_path_factory.mktemp("samples")
    out = subprocess.run(
        [*HUB, "sample", str(folder)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    commands = [
        line.split("replay: ", 1)[1].split()
        for line in out.splitlines()
        if line.strip().startswith("replay: ")
    ]
    return folder, commands


def run(command: list[str], *extra: str) -> dict[str, Any]:
    assert command[0] == "hub"
    done = subprocess.run(
        [*HUB, *command[1:], *extra], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_one_command_per_sample_and_small_files(written: tuple[Path, list[list[str]]]) -> None:
    folder, commands = written
    kinds = ["itch", "lobster", "lobster", "databento", "databento", "capture"]
    assert [c[2] for c in commands] == kinds
    files = list(folder.iterdir())
    assert len(files) == 8
    assert sum(f.stat().st_size for f in files) < 1_000_000
    for command in commands:  # every file a command names exists
        assert all(Path(a).is_file() for a in command[3:] if a.startswith(str(folder)))


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    a = sample.write_samples(tmp_path / "a", 5)
    b = sample.write_samples(tmp_path / "b", 5)
    c = sample.write_samples(tmp_path / "c", 6)
    for x, y, z in zip(a, b, c, strict=True):
        for fx, fy, fz in zip(x.files, y.files, z.files, strict=True):
            assert fx.read_bytes() == fy.read_bytes() != fz.read_bytes()


def test_the_itch_command_gives_the_pure_python_twins_books(
    written: tuple[Path, list[list[str]]],
) -> None:
    _folder, commands = written
    summary = run(commands[0])
    path = Path(commands[0][3])
    twin = PyItchReplay(None)
    twin.feed(gzip.decompress(path.read_bytes()))
    twin.finish()
    assert summary["messages"] == twin.messages == sample.ITCH_MESSAGES + 1  # and the close
    assert set(summary["types"]) >= set("AFECXDUPQH")
    assert sorted(summary["symbols"]) == sorted(sample.ITCH_SYMBOLS)
    for symbol, got in summary["symbols"].items():
        bids, asks = twin.book(symbol).snapshot(5)
        assert got["bids"] == [list(b) for b in bids] and len(bids) == 5
        assert got["asks"] == [list(a) for a in asks] and len(asks) == 5
        assert got["orders"] == twin.book(symbol).order_count() > 50
        assert (got["executions"], got["executed_shares"]) == twin.executions(symbol)
        assert got["state"] == "T"


def test_the_lobster_commands_check_every_orderbook_row(
    written: tuple[Path, list[list[str]]],
) -> None:
    _folder, commands = written
    for command in commands[1:3]:
        summary = run(command, "--check")
        messages = list(csv.reader(Path(command[3]).read_text().splitlines()))
        rows = list(csv.reader(Path(command[5]).read_text().splitlines()))
        assert summary["mismatches"] == 0
        assert summary["rows_checked"] == summary["messages"] - 1 == len(rows) - 1
        kinds = {int(m[1]) for m in messages}
        assert kinds == {1, 2, 3, 4, 5}
        assert summary["trades"] == sum(1 for m in messages if m[1] in ("4", "5"))
        last = [int(x) for x in rows[-1]]
        asks = [last[i : i + 2] for i in range(0, 20, 4) if last[i] != EMPTY_ASK]
        bids = [last[i + 2 : i + 4] for i in range(0, 20, 4) if last[i + 2] != EMPTY_BID]
        assert summary["asks"] == asks and summary["bids"] == bids and len(bids) == 5


def test_the_databento_commands_give_the_engines_books(
    written: tuple[Path, list[list[str]]],
) -> None:
    _folder, commands = written
    dbn, csv_summary = run(commands[3]), run(commands[4])
    assert dbn == csv_summary
    assert dbn["records"] == len(sample.databento_records(1))
    for i, instrument in enumerate(sample.DATABENTO_INSTRUMENTS):
        got = dbn["instruments"][str(instrument)]
        assert set(got["actions"]) == {"A", "C", "M", "T", "F"}
        bids, asks = session(1 + i, sample.DATABENTO_COMMANDS, instrument)[1][-1]
        assert got["bids"] == [list(b) for b in bids][:5]  # type: ignore[attr-defined]
        assert got["asks"] == [list(a) for a in asks][:5]  # type: ignore[attr-defined]
        assert got["trades"] == got["actions"]["T"] > 50


def test_the_capture_command_replays_the_books_the_capture_was_written_from(
    written: tuple[Path, list[list[str]]], tmp_path: Path
) -> None:
    _folder, commands = written
    summary = run(commands[5])  # with --check: exit 0 means no gap, crossed or stale book
    books = write_gemini_capture(tmp_path / "again.jsonl.zst", 1)
    assert summary["venue"] == "gemini" and summary["malformed"] == 0
    assert summary["stale_books"] == {} and sorted(summary["symbols"]) == ["BTCUSD", "ETHUSD"]
    for symbol, (bids, asks) in books.items():
        got = summary["symbols"][symbol]
        assert got["bids"] == [list(b) for b in bids[:5]] and len(bids) > 5
        assert got["asks"] == [list(a) for a in asks[:5]] and len(asks) > 5
        assert got["trades"] > 50 and got["book_updates"] > 500
