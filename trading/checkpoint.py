"""A checkpoint's venue state, encoded without holding the event loop for all of it.

``Venue.snapshot`` shares live objects with the venue, so what later commands change
(books, orders, counters) must be encoded the moment the state is taken. Most of the
bytes are not of that kind: each account's kept reports (100,000 a window, ~36 MB) and
its ``cl_ord_id`` window never change once made. ``TakenState`` encodes those ``SLICE``
entries at a time, the event loop serving orders in between, and hands the journal the
pieces to write one after the other: they are never joined in memory (each copy of
36 MB held the loop ~20 ms). Joined, they are the JSON of ``orjson.dumps(state)``, keys
in another order, so restoring is unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

SLICE = 5_000
"""Kept reports (or ``cl_ord_id`` entries) encoded between two turns of the event loop
(~3 ms here)."""
DEFERRED = ("reports", "by_cl")
"""The members of an account's state that are immutable once made (the kept reports;
the ``cl_ord_id`` window's tuples and first reports), so they may be encoded after the
state was taken."""

Piece = bytes | memoryview


class TakenState:
    """A checkpoint's venue state: the changing part encoded now, the rest by ``encoded``."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._head = _opened({k: v for k, v in state.items() if k != "accounts"}, "accounts")
        self._accounts: list[tuple[bytes, dict[str, Any]]] = []
        for key, account in state["accounts"].items():
            now = {k: v for k, v in account.items() if k not in DEFERRED}
            later = {k: account[k] for k in DEFERRED if k in account}
            self._accounts.append((orjson.dumps(key) + b":" + orjson.dumps(now)[:-1], later))

    async def encoded(self) -> list[Piece]:
        """The whole state's JSON, in pieces."""
        out: list[Piece] = [self._head]
        for n, (head, later) in enumerate(self._accounts):
            out.append(b"," * (n > 0) + head)
            members = head[-1:] != b"{"  # the account object has a member already
            for name, value in later.items():
                out.append(b"," * members + orjson.dumps(name) + b":")
                out += [piece async for piece in _in_slices(value)]
                members = True
            out.append(b"}")
        out.append(b"}}")
        return out


def _opened(obj: dict[str, Any], then: str) -> bytes:
    """``obj``'s JSON up to a last member ``then``, whose value follows."""
    return orjson.dumps(obj)[:-1] + b"," * bool(obj) + orjson.dumps(then) + b":{"


async def _in_slices(value: list[Any] | dict[str, Any]) -> AsyncIterator[Piece]:
    """``value`` as JSON in pieces of ``SLICE`` entries, the event loop served after each."""
    entries = list(value.items()) if isinstance(value, dict) else value
    brackets = b"{}" if isinstance(value, dict) else b"[]"
    yield brackets[:1]
    for at in range(0, len(entries), SLICE):
        part = entries[at : at + SLICE]
        encoded = orjson.dumps(dict(part) if isinstance(value, dict) else part)
        if at:
            yield b","
        yield memoryview(encoded)[1:-1]
        await asyncio.sleep(0)
    yield brackets[1:]
