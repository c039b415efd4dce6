"""Pure-Python reference implementation of orderbook_core._book (the L2 book).

Same API, same results and same errors as the compiled core; it exists for
differential tests and for machines without a compiler. Clarity over speed.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, MutableSequence, Sequence

from orderbook_core.errors import InvalidPrice, InvalidSize
from orderbook_core.types import F_LAST, F_SNAPSHOT, check_int64, check_side, checksum, side_key

LevelUpdate = tuple[int, int, int]


class L2Book:
    """One aggregate size per price level, both sides."""

    def __init__(self, emit_deltas: bool = False) -> None:
        self.emit_deltas = emit_deltas
        self.seq = 0
        self._sizes: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._keys: tuple[list[int], list[int]] = ([], [])
        self._deltas: list[list[int]] = []

    def _set(self, side: int, price: int, size: int) -> int:
        check_int64(price, size)
        check_side(side)
        if size < 0:
            raise InvalidSize(
                f"negative size {size} at price {price}", size=size, side=side, price=price
            )
        if price <= 0:
            raise InvalidPrice(f"non-positive price {price}", price=price, side=side)
        sizes, keys = self._sizes[side], self._keys[side]
        if size == 0:
            if price not in sizes:
                return 0
            del sizes[price]
            keys.pop(bisect_left(keys, side_key(side, price)))
            action = 3
        elif price not in sizes:
            sizes[price] = size
            insort(keys, side_key(side, price))
            action = 1
        else:
            sizes[price] = size
            action = 2
        if self.emit_deltas:
            self.seq += 1
            self._deltas.append([action, side, price, size, 0, 0, self.seq])
        return action

    def _mark_last(self) -> None:
        if self.emit_deltas and self._deltas:
            self._deltas[-1][5] |= F_LAST

    def set(self, side: int, price: int, size: int) -> int:
        action = self._set(side, price, size)
        self._mark_last()
        return action

    def apply(self, updates: Iterable[LevelUpdate]) -> int:
        try:
            return sum(1 for side, price, size in updates if self._set(side, price, size) != 0)
        finally:
            self._mark_last()

    def apply_batch(self, ops: Sequence[int], tops: MutableSequence[int] | None = None) -> int:
        if len(ops) % 3:
            raise ValueError(f"batch length {len(ops)} is not a multiple of 3")
        n = len(ops) // 3
        if tops is not None and len(tops) < 4 * n:
            raise ValueError(f"tops needs {4 * n} slots, has {len(tops)}")
        for i in range(n):
            try:
                self._set(ops[3 * i], ops[3 * i + 1], ops[3 * i + 2])
            except Exception as exc:
                exc.index = i  # type: ignore[attr-defined]
                self._mark_last()
                raise
            if tops is not None:
                bid, ask = self.best_bid() or (0, 0), self.best_ask() or (0, 0)
                tops[4 * i], tops[4 * i + 1] = bid
                tops[4 * i + 2], tops[4 * i + 3] = ask
        self._mark_last()
        return n

    def take_deltas(self) -> list[tuple[int, ...]]:
        out = [tuple(d) for d in self._deltas]
        self._deltas = []
        return out

    def size_at(self, side: int, price: int) -> int:
        check_side(side)
        return self._sizes[side].get(price, 0)

    def best_bid(self) -> tuple[int, int] | None:
        keys = self._keys[0]
        return (-keys[0], self._sizes[0][-keys[0]]) if keys else None

    def best_ask(self) -> tuple[int, int] | None:
        keys = self._keys[1]
        return (keys[0], self._sizes[1][keys[0]]) if keys else None

    def top(self) -> tuple[int, int, int, int]:
        bid, ask = self.best_bid() or (0, 0), self.best_ask() or (0, 0)
        return (bid[0], bid[1], ask[0], ask[1])

    def depth(self, side: int, n: int = 0) -> list[tuple[int, int]]:
        check_side(side)
        keys = self._keys[side] if n <= 0 else self._keys[side][:n]
        sign = -1 if side == 0 else 1
        return [(sign * k, self._sizes[side][sign * k]) for k in keys]

    def snapshot(self, n: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return self.depth(0, n), self.depth(1, n)

    def snapshot_deltas(self, n: int = 0) -> list[tuple[int, ...]]:
        """The book (top ``n`` levels, all if 0) as deltas: CLEAR, then one ADD per level,
        all flagged F_SNAPSHOT, the last also F_LAST; each stamped with the book's seq."""
        out: list[tuple[int, ...]] = [(4, 0, 0, 0, 0, F_SNAPSHOT, self.seq)]
        for side in (0, 1):
            out.extend((1, side, p, s, 0, F_SNAPSHOT, self.seq) for p, s in self.depth(side, n))
        out[-1] = (*out[-1][:5], F_SNAPSHOT | F_LAST, out[-1][6])
        return out

    def checksum(self, n: int = 10) -> int:
        return checksum(self.depth(0, n), self.depth(1, n))

    def digits_checksum(self, n: int = 10, price_shift: int = 0, size_shift: int = 0) -> int:
        """CRC32 of the top ``n`` asks then bids, each level's price then size as digits of
        the value scaled by 10**shift (a negative shift drops digits)."""
        text = "".join(
            f"{_scaled(p, price_shift)}{_scaled(s, size_shift)}"
            for side in (1, 0)
            for p, s in (self.depth(side, n) if n > 0 else [])
        )
        return zlib.crc32(text.encode())

    def text_checksum(
        self,
        bid_texts: dict[int, str],
        ask_texts: dict[int, str],
        n: int,
        fallback: Callable[[int, int, int], str],
    ) -> int:
        """Signed CRC32 of the top ``n`` bids and asks interleaved, each level the text
        sent for it (else ``fallback(side, price, size)``), joined by ":"."""
        b, a = (
            [
                t if type(t := sent.get(p)) is str else _fallback(fallback, side, p, s)
                for p, s in levels
            ]
            for side, sent, levels in (
                (0, bid_texts, self.depth(0, n)),
                (1, ask_texts, self.depth(1, n)),
            )
        )
        k = min(len(b), len(a))
        parts = [text for pair in zip(b, a, strict=False) for text in pair] + b[k:] + a[k:]
        crc = zlib.crc32(":".join(parts).encode())
        return crc - (1 << 32) if crc >= 1 << 31 else crc

    def trim(self, n: int) -> list[tuple[int, int, int]]:
        if n < 1:
            raise ValueError(f"trim keeps n >= 1 levels, got {n}")
        removed = [(side, p, 0) for side in (0, 1) for p, _s in self.depth(side)[n:]]
        for side, price, _zero in removed:
            self._set(side, price, 0)
        self._mark_last()
        return removed

    def level_count(self, side: int) -> int:
        check_side(side)
        return len(self._keys[side])

    def is_crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def clear(self) -> None:
        for side in (0, 1):
            self._sizes[side].clear()
            self._keys[side].clear()
        if self.emit_deltas:
            self.seq += 1
            self._deltas.append([4, 0, 0, 0, 0, F_LAST, self.seq])


def _scaled(value: int, shift: int) -> int:
    factor: int = 10 ** abs(shift)
    return value * factor if shift >= 0 else value // factor


def _fallback(fallback: Callable[[int, int, int], str], side: int, price: int, size: int) -> str:
    text = fallback(side, price, size)
    if type(text) is not str:
        raise TypeError(f"the checksum text of level {price} is not a str: {text!r:.40}")
    return text
