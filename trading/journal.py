"""The venue's sequenced log in embedded mode: an append-only journal file with group commit,
and the one codec of its records (used by the Kafka log too).

One record per line: ``<crc32 of the JSON, 8 hex digits> <JSON array>\n``. The first line
is the header, ``["journal", FORMAT, generation]``; every other line is one command as
``encode`` writes it: its kind, then its fields in their declared order
(``["cancel", 1001, 1700000000000000000, "BTC-USD", 1000000000007]``). A file in any other
format (the JSON objects of the journals before issue 15) is refused as a whole, naming
the file: it is not this venue's to read.

``append`` only buffers; ``commit`` writes everything buffered and fsyncs once (in a
thread, so the event loop keeps matching while the disk works), and only then may the
commands' acknowledgements go out. So durability costs one fsync per batch of commands,
not one per order.

``read`` returns every intact record in order. A torn last line (the process died in the
middle of a write) was never committed, so never acknowledged, and is cut off when the
journal is opened again. A bad line anywhere before the end is corruption: it is refused
with its line number, never skipped. An intact line is not trusted either: the order path
replays it through ``trading/replay.py``, where ``decode`` re-reads its shape and the venue
re-checks its int64 rules, refusing (logging, counting, skipping) what no longer passes,
so a poisoned command cannot crash every restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import operator
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from hub.errors import BadInput
from trading.messages import Cancel, Command, Kill, MassCancel, New, Replace, SetState, Sim

Buffer = bytes | memoryview

FORMAT = 2
"""The journal's format (1: one JSON object per command, before issue 15)."""
HEADER = "journal"


class JournalError(BadInput):
    """The journal is corrupt before its end, or not in this format; the message names the
    file (and the line)."""


# --- the codec ------------------------------------------------------------------------

KINDS: dict[str, type[Command]] = {
    c.kind: c for c in (Sim, SetState, New, Cancel, Replace, MassCancel, Kill)
}
"""Every command record by the kind the journal names it by."""
_FIELDS = {c: tuple(f.name for f in dataclasses.fields(c)) for c in KINDS.values()}
_VALUES: dict[type[Command], Callable[[Any], tuple[Any, ...]]] = {
    c: operator.attrgetter(*names) for c, names in _FIELDS.items()
}
_IS: dict[str, Callable[[object], bool]] = {
    "int": lambda v: type(v) is int,  # any size: the venue's checks judge the range
    "str": lambda v: type(v) is str,
    "bool": lambda v: type(v) is bool,
    "str | None": lambda v: v is None or type(v) is str,
}
_TYPES = {
    c: tuple((f.name, str(f.type), _IS[str(f.type)]) for f in dataclasses.fields(c))
    for c in KINDS.values()
}


def encode(cmd: Command) -> bytes:
    """One command as the journal (and the Kafka log) holds it: a JSON array."""
    return orjson.dumps([cmd.kind, *_VALUES[type(cmd)](cmd)])


def decode(record: object) -> Command:
    """The command a record read back holds; ValueError, saying what is wrong, for anything
    that is not one (field ranges are the venue's to check: ``checks.replay_problem``)."""
    kind = record[0] if isinstance(record, list) and record else None
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown command kind {repr(kind)[:40]}")
    fields = _TYPES[cls]
    assert isinstance(record, list)
    if len(record) != len(fields) + 1:
        names = ", ".join(name for name, _t, _is in fields)
        raise ValueError(
            f"a {kind} command has {len(fields)} fields ({names}), not {len(record) - 1}"
        )
    for (name, typename, is_type), value in zip(fields, record[1:], strict=True):
        if not is_type(value):
            raise ValueError(f"{kind} {name} must be {typename}, got {type(value).__name__}")
    return cls(*record[1:])


def is_record(value: object) -> bool:
    """Whether a value read back is a command record at all (an array naming a kind)."""
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], str)
        and (value[0] in KINDS)
    )


def old_format(value: object) -> bool:
    """Whether a record is one of the JSON objects the logs held before issue 15."""
    return isinstance(value, dict) and "k" in value


def old_format_error(where: str) -> JournalError:
    return JournalError(
        f"{where} is in the order log format before issue 15 (one JSON object per command); "
        f"this venue reads format {FORMAT} only: move it away to start an empty venue"
    )


# --- the file -------------------------------------------------------------------------


def _line(body: bytes) -> bytes:
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _header(generation: int) -> bytes:
    return _line(orjson.dumps([HEADER, FORMAT, generation]))


class Contents(NamedTuple):
    generation: int
    records: list[Any]
    """Every intact command record after the header, as JSON values (``decode`` reads them)."""
    length: int
    """Bytes of the intact prefix (header included; 0: nothing intact, not even a header)."""


def read(path: Path) -> Contents:
    """The intact contents of a journal file (nothing if absent)."""
    if not path.exists():
        return Contents(0, [], 0)
    *complete, tail = path.read_bytes().split(b"\n")
    values: list[Any] = []
    good = 0
    for number, raw in enumerate(complete, start=1):
        value = _parse(raw)
        if value is None:
            if number == len(complete) and not tail:
                break  # the very last line, damaged while being written: never committed
            raise JournalError(f"journal {path} line {number} is corrupt (crc or JSON)")
        if number == 1:
            _check_header(path, value)
        values.append(value)
        good += len(raw) + 1
    if not values:
        return Contents(0, [], 0)  # a tail without its newline was never committed either
    return Contents(values[0][2], values[1:], good)


def _check_header(path: Path, value: Any) -> None:
    if old_format(value):
        raise old_format_error(f"journal {path}")
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and value[:2] == [HEADER, FORMAT]
        and type(value[2]) is int
        and value[2] >= 0
    )
    if not ok:
        shown = orjson.dumps(value)[:60].decode(errors="replace")
        raise JournalError(
            f"journal {path} does not start with a format {FORMAT} header "
            f'(["{HEADER}", {FORMAT}, generation]): its first line is {shown}'
        )


def _parse(raw: bytes) -> Any:
    """The JSON value of one intact line (an array or an object), or None."""
    if len(raw) < 10 or raw[8:9] != b" ":
        return None
    body = raw[9:]
    try:
        if int(raw[:8], 16) != zlib.crc32(body):
            return None
        value = orjson.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, list | dict) else None


class Journal:
    """Append commands, commit them durably in groups."""

    supports_checkpoints = True

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.checkpoint_path = path.with_name(path.name + ".checkpoint")
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self.generation, commands, good = read(path)
        with path.open("ab") as f:
            f.truncate(good)  # drop a torn tail before appending after it
        self.in_file = len(commands)
        """Commands written to the journal file (after its header)."""
        self.appended = self.in_file
        """Commands of this generation: written, being written, or waiting to be."""
        self.checkpoint = self._load_checkpoint()
        self.recovered = self._after_checkpoint(commands)
        """The records to replay, as read (``decode`` makes them commands)."""
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = good
        """Bytes in the file."""
        if not good:
            header = _header(self.generation)
            self._write(header)  # a new file starts with its header
            self._size = len(header)
        self._mark: int | None = None
        self._mark_offset: int | None = None
        """Where the ``mark``ed command ends in the file, once it is written."""
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

    def _after_checkpoint(self, commands: list[Any]) -> list[Any]:
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

    def mark(self, covers: int) -> None:
        """Say that a checkpoint covering the generation's first ``covers`` commands (all
        appended so far) is being taken: where the last of them ends in the file is noted as
        it is written, so the rotation after the checkpoint copies only what follows."""
        self._mark = covers
        self._mark_offset = self._size if covers == self.in_file else None

    async def write_checkpoint(self, state: Buffer | Sequence[Buffer], covers: int) -> None:
        """Make ``state`` (the venue after the file's first ``covers`` commands, as JSON
        serialized when it was taken; or its pieces, in order) durable, then start a new
        generation of the file holding only what came after it. A crash at any point leaves
        a checkpoint and a file that recover to the same venue.

        Commits go on while the checkpoint itself is written: until the rotation, recovery
        reads the old generation's file and replays what follows its first ``covers``
        commands, those committed meanwhile included. Only the rotation holds them: it
        copies just the commands after ``covers`` (read from the offset ``mark`` noted), not
        the whole file, so a checkpoint holds acknowledgements for a few milliseconds, not
        the ~0.4 s a re-read of a 200,000-command file took. The checkpoint must have been
        ``mark``ed at ``covers`` and those commands committed."""
        offset = self._mark_offset
        if self._mark != covers or offset is None:
            raise ValueError(f"checkpoint covering {covers} was not marked, or not committed")
        head = orjson.dumps({"g": self.generation + 1, "covers": covers})
        pieces = [head[:-1] + b',"state":', *_pieces(state), b"}"]
        await asyncio.to_thread(_replace, self.checkpoint_path, pieces)
        async with self._lock:  # no commit in between; appends wait in memory
            await asyncio.to_thread(self._rotate, offset)
            self.generation += 1
            self.in_file -= covers
            self.appended -= covers
            self.checkpoints += 1
            self._mark = self._mark_offset = None

    def _rotate(self, offset: int) -> None:
        with self.path.open("rb") as f:
            f.seek(offset)
            rest = f.read()
        head = _header(self.generation + 1)
        _replace(self.path, head + rest)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = len(head) + len(rest)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.recovered)

    def append(self, command: Command) -> None:
        self._pending.append(_line(encode(command)))
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
            self._written(batch, len(data))
            return len(batch)

    def _written(self, batch: list[bytes], size: int) -> None:
        """Count a batch now in the file; note where the ``mark``ed command ends."""
        mark, before = self._mark, self.in_file
        if mark is not None and self._mark_offset is None and before < mark <= before + len(batch):
            self._mark_offset = self._size + sum(len(line) for line in batch[: mark - before])
        self._size += size
        self.commits += 1
        self.committed += len(batch)
        self.in_file += len(batch)

    def commit_now(self) -> int:
        """``commit`` without an event loop (tests, shutdown)."""
        batch, self._pending = self._pending, []
        if batch:
            data = b"".join(batch)
            self._write(data)
            self._written(batch, len(data))
        return len(batch)

    async def open(self) -> None:
        """Nothing to do: the file was read when the journal was made."""

    def close(self) -> None:
        os.close(self._fd)

    async def aclose(self) -> None:
        self.close()


def _pieces(data: Buffer | Sequence[Buffer]) -> Sequence[Buffer]:
    return [data] if isinstance(data, bytes | memoryview) else data


def _replace(path: Path, data: Buffer | Sequence[Buffer]) -> None:
    """Write ``path`` (``data``, or its pieces one after the other) whole or not at all: a
    temporary file, fsync'd, renamed over it, and the directory fsync'd so the rename
    itself survives a crash."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for piece in _pieces(data):
            view = memoryview(piece)
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
