"""Id-keyed L2 books (Bybit ``orderBookL2_25``, BitMEX ``orderBookL2``): rows keyed by ``id``.

These venues send every price level as a row with an ``id`` the venue keeps
for that level: a snapshot (``partial``) lists them all, then messages
``delete``, ``update`` and ``insert`` rows by id. There is no sequence number
or checksum, so the ids are the only way a lost message shows: a delete or
update of an id the book does not hold, or an insert of one it already
holds, means the book no longer is the venue's. ``IdBook`` keeps
id -> (side, price) beside the sync engine's price-level book and turns each
message into the absolute level changes ``BookSync`` applies, or names the
contradiction (changing nothing) so the parser can mark the book stale.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from hub.events import LevelChange

Row = tuple[Hashable, int, int, int]
"""(id, side, price, size) of one row; price 0 when the row does not carry one. The id is
the venue's: BitMEX sends an integer, Bybit a string."""


class IdBook:
    """id -> the level it names, as one int: ``price << 1 | side``.

    An int, not a (side, price) tuple: a dict of ints and strs is no work for the cyclic
    collector (CPython untracks it), where BitMEX's XBTUSD book of 9,349 tuples was walked
    by every collection a frame set off, and a snapshot's ids are loaded without allocating
    a tuple per level."""

    __slots__ = ("ids",)

    def __init__(self) -> None:
        self.ids: dict[Hashable, int] = {}

    def level(self, ident: Hashable) -> tuple[int, int] | None:
        """The (side, price) the book holds under ``ident``."""
        code = self.ids.get(ident)
        return None if code is None else (code & 1, code >> 1)

    def levels(self) -> dict[Hashable, tuple[int, int]]:
        """Every id's (side, price)."""
        return {i: (code & 1, code >> 1) for i, code in self.ids.items()}

    def load(self, rows: Sequence[Row]) -> tuple[LevelChange, ...] | str:
        """A snapshot's rows: the levels, or why they contradict each other (book unchanged).

        Built with comprehensions and checked by counting (the ids, then their levels, must
        all differ); only a snapshot that fails is walked again to name its first repeat."""
        ids = {i: price << 1 | side for i, side, price, _size in rows}
        if len(ids) != len(rows) or len(set(ids.values())) != len(ids):
            return _repeat(rows)
        self.ids = ids
        return tuple([(side, price, size) for _i, side, price, size in rows])

    def apply(
        self, deletes: Sequence[Row], updates: Sequence[Row], inserts: Sequence[Row]
    ) -> tuple[LevelChange, ...] | str:
        """One message (deletes first, then updates, then inserts, as the venues apply
        them): its level changes, or the first contradiction with the book (book unchanged)."""
        live = self.ids
        if not deletes and not inserts:
            return _updates(live, updates)
        if not updates and not inserts:
            return _deletes(live, deletes)
        if not deletes and not updates:
            return _inserts(live, inserts)
        gone: set[Hashable] = set()
        new: dict[Hashable, int] = {}

        def at(i: Hashable) -> int | None:
            if i in new:
                return new[i]
            return None if i in gone else live.get(i)

        levels: list[LevelChange] = []
        for kind, rows in (("delete", deletes), ("update", updates)):
            for i, side, price, size in rows:
                code = at(i)
                if code is None:
                    return f"{kind} of unknown id {i}"
                if side != code & 1 or (price and price != code >> 1):
                    return f"{kind} of id {i} names another level than the book holds"
                if kind == "delete":
                    gone.add(i)
                    new.pop(i, None)
                    size = 0
                levels.append((side, code >> 1, size))
        for i, side, price, size in inserts:
            if at(i) is not None:
                return f"insert of id {i}, which the book already holds"
            new[i] = price << 1 | side
            gone.discard(i)
            levels.append((side, price, size))
        for i in gone:
            live.pop(i, None)
        live.update(new)
        return tuple(levels)


def _updates(live: dict[Hashable, int], updates: Sequence[Row]) -> tuple[LevelChange, ...] | str:
    """``IdBook.apply`` of a message of updates alone (most of them): nothing is added or
    removed, so each id is read from the book as it is."""
    levels: list[LevelChange] = []
    for i, side, price, size in updates:
        code = live.get(i)
        if code is None:
            return f"update of unknown id {i}"
        if side != code & 1 or (price and price != code >> 1):
            return f"update of id {i} names another level than the book holds"
        levels.append((side, code >> 1, size))
    return tuple(levels)


def _deletes(live: dict[Hashable, int], deletes: Sequence[Row]) -> tuple[LevelChange, ...] | str:
    """``IdBook.apply`` of a message of deletes alone: an id deleted twice is unknown the
    second time."""
    levels: list[LevelChange] = []
    gone: set[Hashable] = set()
    for i, side, price, _size in deletes:
        code = live.get(i)
        if code is None or i in gone:
            return f"delete of unknown id {i}"
        if side != code & 1 or (price and price != code >> 1):
            return f"delete of id {i} names another level than the book holds"
        gone.add(i)
        levels.append((side, code >> 1, 0))
    for i in gone:
        del live[i]
    return tuple(levels)


def _inserts(live: dict[Hashable, int], inserts: Sequence[Row]) -> tuple[LevelChange, ...] | str:
    """``IdBook.apply`` of a message of inserts alone: an id the book or the message
    already holds is refused."""
    new: dict[Hashable, int] = {}
    for i, side, price, _size in inserts:
        if i in live or i in new:
            return f"insert of id {i}, which the book already holds"
        new[i] = price << 1 | side
    live.update(new)
    return tuple([(side, price, size) for _i, side, price, size in inserts])


def _repeat(rows: Sequence[Row]) -> str:
    """The first id, or (side, price), a snapshot's rows list twice."""
    ids: set[Hashable] = set()
    prices: set[tuple[int, int]] = set()
    for i, side, price, _size in rows:
        if i in ids:
            return f"snapshot lists id {i} twice"
        if (side, price) in prices:
            return f"snapshot lists price {price} of side {side} under two ids"
        ids.add(i)
        prices.add((side, price))
    raise AssertionError("rows with a repeat have one")
