"""Constants shared by both book-core implementations and their users."""

from __future__ import annotations

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
