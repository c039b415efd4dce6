"""The venue's sequenced log in embedded mode: an append-only journal file with group commit.

One command per line: ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``. ``append`` only
buffers; ``commit`` writes everything buffered and fsyncs once (in a thread, so
the event loop keeps matching while the disk works), and only then may the
commands' acknowledgements go out. So durability costs one fsync per batch of
commands, not one per order.

``read`` returns every intact command in order. A torn last line (the process
died in the middle of a write) was never committed, so never acknowledged, and
is cut off when the journal is opened again. A bad line anywhere before the
end is corruption: it is refused with its line number, never skipped. An intact line
is not trusted either: the order path replays it through ``trading/replay.py``, which
re-checks every command by today's shape and int64 rules and refuses (logs, counts,
skips) what no longer passes, so a poisoned command cannot crash every restart.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from hub.errors import BadInput


class JournalError(BadInput):
    """The journal is corrupt before its end; the message names file and line."""


def _line(command: dict[str, Any]) -> bytes:
    body = orjson.dumps(command)
    return b"%08x %s\n" % (zlib.crc32(body), body)


def read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(commands, byte length of the intact prefix) of a journal file (nothing if absent)."""
    if not path.exists():
        return [], 0
    *complete, tail = path.read_bytes().split(b"\n")
    commands: list[dict[str, Any]] = []
    good = 0
    for number, raw in enumerate(complete, start=1):
        command = _parse(raw)
        if command is None:
            if number == len(complete) and not tail:
                break  # the very last line, damaged while being written: never committed
            raise JournalError(f"journal {path} line {number} is corrupt (crc or JSON)")
        commands.append(command)
        good += len(raw) + 1
    return commands, good  # a tail without its newline was never committed either


def _parse(raw: bytes) -> dict[str, Any] | None:
    if len(raw) < 10 or raw[8:9] != b" ":
        return None
    body = raw[9:]
    try:
        if int(raw[:8], 16) != zlib.crc32(body):
            return None
        value = orjson.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Journal:
    """Append commands, commit them durably in groups."""

    supports_checkpoints = True

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.checkpoint_path = path.with_name(path.name + ".checkpoint")
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        commands, good = read(path)
        with path.open("ab") as f:
            f.truncate(good)  # drop a torn tail before appending after it
        self.generation = 0
        if commands and commands[0].get("k") == "generation":
            self.generation = commands.pop(0)["g"]
        self.in_file = len(commands)
        """Commands written to the journal file (after its generation line)."""
        self.appended = self.in_file
        """Commands of this generation: written, being written, or waiting to be."""
        self.checkpoint = self._load_checkpoint()
        self.recovered = self._after_checkpoint(commands)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()
        self.commits = 0
        self.checkpoints = 0
        self.committed = len(self.recovered)

    def _load_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        try:
            data = orjson.loads(self.checkpoint_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise JournalError(f"checkpoint {self.checkpoint_path} is corrupt: {exc}") from None
        if not isinstance(data, dict) or not {"g", "covers", "state"} <= set(data):
            raise JournalError(f"checkpoint {self.checkpoint_path} lacks g, covers or state")
        return data

    def _after_checkpoint(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The commands to replay on top of the checkpoint (all of them without one)."""
        if self.checkpoint is None:
            if self.generation:
                raise JournalError(
                    f"journal {self.path} is generation {self.generation} but its checkpoint "
                    f"{self.checkpoint_path} is missing"
                )
            return commands
        g, covers = self.checkpoint["g"], self.checkpoint["covers"]
        if self.generation == g:
            return commands
        if self.generation == g - 1 and len(commands) >= covers:
            return commands[covers:]  # stopped between the checkpoint and the rotation
        raise JournalError(
            f"journal {self.path} (generation {self.generation}, {len(commands)} commands) "
            f"does not follow checkpoint generation {g} covering {covers}"
        )

    async def write_checkpoint(self, state: bytes, covers: int) -> None:
        """Make ``state`` (the venue after the file's first ``covers`` commands, as JSON
        serialized when it was taken) durable, then start a new generation of the file
        holding only what came after it. A crash at any point leaves a checkpoint and a file
        that recover to the same venue."""
        async with self._lock:  # no commit in between; appends wait in memory
            head = orjson.dumps({"g": self.generation + 1, "covers": covers})
            data = head[:-1] + b',"state":' + state + b"}"
            await asyncio.to_thread(self._rotate, data, covers)
            self.generation += 1
            self.in_file -= covers
            self.appended -= covers
            self.checkpoints += 1

    def _rotate(self, checkpoint: bytes, covers: int) -> None:
        _replace(self.checkpoint_path, checkpoint)
        *lines, _tail = self.path.read_bytes().split(b"\n")
        if lines and (_parse(lines[0]) or {}).get("k") == "generation":
            lines = lines[1:]
        header = _line({"k": "generation", "g": self.generation + 1})
        rest = b"".join(line + b"\n" for line in lines[covers:])
        _replace(self.path, header + rest)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.recovered)

    def append(self, command: dict[str, Any]) -> None:
        self._pending.append(_line(command))
        self.appended += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fdatasync(self._fd)  # the data and the new length, which is all a reader needs

    async def commit(self) -> int:
        """Make everything appended so far durable; return how many commands that was."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            data = b"".join(batch)
            if self.fsync:
                # fdatasync releases the GIL: matching goes on while the disk works.
                await asyncio.to_thread(self._write, data)
            else:
                self._write(data)  # a write to the page cache: cheaper than a thread hop
            self.commits += 1
            self.committed += len(batch)
            self.in_file += len(batch)
            return len(batch)

    def commit_now(self) -> int:
        """``commit`` without an event loop (tests, shutdown)."""
        batch, self._pending = self._pending, []
        if batch:
            self._write(b"".join(batch))
            self.commits += 1
            self.committed += len(batch)
            self.in_file += len(batch)
        return len(batch)

    async def open(self) -> None:
        """Nothing to do: the file was read when the journal was made."""

    def close(self) -> None:
        os.close(self._fd)

    async def aclose(self) -> None:
        self.close()


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file, fsync'd, renamed over it, and
    the directory fsync'd so the rename itself survives a crash."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
