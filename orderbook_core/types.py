"""Constants shared by both book-core implementations and their users."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from enum import IntEnum


class Side(IntEnum):
    """Book side: bids are buy interest, asks are sell interest."""

    BID = 0
    ASK = 1

    @property
    def opposite(self) -> Side:
        return Side.ASK if self is Side.BID else Side.BID


class Action(IntEnum):
    """What a book delta does to its price level or order."""

    ADD = 1
    UPDATE = 2
    DELETE = 3
    CLEAR = 4


F_LAST = 1
"""Flag: the last delta of an atomic update; the book is consistent after it."""
F_SNAPSHOT = 2
"""Flag: the delta belongs to a snapshot rather than an incremental update."""


def check_side(side: int) -> None:
    """Refuse anything but 0 (bid) or 1 (ask), as the compiled core does."""
    if side not in (0, 1):
        raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_int64(*values: int) -> None:
    """Refuse what an int64 cannot hold, as the compiled core's argument conversion does
    (OverflowError, before anything changes): the pure-Python twins hold any int."""
    for v in values:
        if not INT64_MIN <= v <= INT64_MAX:
            raise OverflowError(f"{v} does not fit an int64")


def side_key(side: int, price: int) -> int:
    """Sort key that puts the best price first on either side (bids negated)."""
    return -price if side == 0 else price


CHECKSUM_LEVELS = 10
"""Levels per side a published book checksum covers (fewer when the book or view is shallower)."""


def checksum_text(bids: Sequence[tuple[int, ...]], asks: Sequence[tuple[int, ...]]) -> bytes:
    """The canonical text a book checksum covers.

    For level i = 0, 1, ... : the i-th bid as ``price:size:`` (if any), then
    the i-th ask as ``price:size:`` (if any), in integer ticks and lots; the
    final ``:`` is dropped. ``b"1002:5:1003:7:1001:2"`` is two bids and one ask.
    """
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        for levels in (bids, asks):
            if i < len(levels):
                parts.append(f"{levels[i][0]}:{levels[i][1]}")
    return ":".join(parts).encode()


def checksum(bids: Sequence[tuple[int, ...]], asks: Sequence[tuple[int, ...]]) -> int:
    """CRC32 (IEEE, unsigned) of ``checksum_text``: what ``book.checksum(n)`` returns."""
    return zlib.crc32(checksum_text(bids, asks))
