"""Replay a NASDAQ TotalView-ITCH 5.0 file (plain or gzip) through the book core."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from orderbook_core import ItchReplay

CHUNK = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"


def open_itch(path: Path) -> BinaryIO:
    """Open a file for reading, transparently decompressing gzip."""
    raw = path.open("rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def replay_itch(path: Path, symbols: Iterable[str] | None = None, after: int = -1) -> ItchReplay:
    """Build the books of ``symbols`` (all if None) from the first ``after`` messages (all if < 0).

    Raises the core's typed errors (with byte offset and message type) on
    truncated or corrupt input; a truncated file is only an error when the
    whole file is being replayed.
    """
    replay = ItchReplay(symbols)
    with open_itch(path) as f:
        while after < 0 or replay.messages < after:
            chunk = f.read(CHUNK)
            if not chunk:
                replay.finish()
                break
            replay.feed(chunk, after)
    return replay
