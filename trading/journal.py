"""The venue's sequenced log in embedded mode: an append-only journal file with group commit.

One command per line: ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``. ``append`` only
buffers; ``commit`` writes everything buffered and fsyncs once (in a thread, so
the event loop keeps matching while the disk works), and only then may the
commands' acknowledgements go out. So durability costs one fsync per batch of
commands, not one per order.

``read`` returns every intact command in order. A torn last line (the process
died in the middle of a write) was never committed, so never acknowledged, and
is cut off when the journal is opened again. A bad line anywhere before the
end is corruption: it is refused with its line number, never skipped.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from hub.errors import HubError


class JournalError(HubError):
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

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self.recovered, good = read(path)
        with path.open("ab") as f:
            f.truncate(good)  # drop a torn tail before appending after it
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()
        self.commits = 0
        self.committed = len(self.recovered)
        self.bytes = good

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.recovered)

    def append(self, command: dict[str, Any]) -> None:
        self._pending.append(_line(command))

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
            self.bytes += len(data)
            return len(batch)

    def commit_now(self) -> int:
        """``commit`` without an event loop (tests, shutdown)."""
        batch, self._pending = self._pending, []
        if batch:
            self._write(b"".join(batch))
            self.commits += 1
            self.committed += len(batch)
        return len(batch)

    async def open(self) -> None:
        """Nothing to do: the file was read when the journal was made."""

    def close(self) -> None:
        os.close(self._fd)

    async def aclose(self) -> None:
        self.close()
