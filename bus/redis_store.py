"""Latest book snapshots and instrument data in Redis.

One key per book, ``<prefix>:book:<venue>:<symbol>``, holding the encoded
snapshot (its seq inside), written with a single SET so readers never see a
snapshot without its seq. Instruments live in the hash ``<prefix>:instruments``.

What is read back is validated before anyone uses it (``snapshot_problem``): a
snapshot written by a faulty or poisoned feed (a size past int64, a crossed or
unsorted book, a negative seq) raises ``BadSnapshot`` naming the key and the
problem, so a node reports the book unsynced and retries instead of dying or
serving nothing.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bus.consolidate import CONSOLIDATED
from hub.errors import BadMessage, ServiceUnavailable
from hub.events import BookSnapshot, Instrument, decode, decode_as, encode

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


class BadSnapshot(BadMessage):
    """A stored snapshot cannot be used; the message names its key and the problem."""

    retriable = True
    """A later snapshot (the feed stores one every few hundred ms) may be good."""


def _side_problem(name: str, levels: tuple[tuple[int, int], ...], descending: bool) -> str | None:
    last: int | None = None
    for i, level in enumerate(levels):
        if len(level) != 2:
            return f"{name}[{i}] is not a (price, size) pair"
        price, size = level
        if type(price) is not int or not INT64_MIN <= price <= INT64_MAX:
            return f"{name}[{i}] price {price!r} is not an int64"
        if type(size) is not int or not 0 < size <= INT64_MAX:
            return f"{name}[{i}] size {size!r} at price {price} is not a positive int64"
        if last is not None and (price >= last if descending else price <= last):
            return f"{name} not strictly {'descending' if descending else 'ascending'} at {i}"
        last = price
    return None


def snapshot_problem(snap: BookSnapshot) -> str | None:
    """What makes a snapshot unusable (None: nothing): seq, epoch and times within int64, every
    size positive and within int64, prices sorted best first, the book not crossed (but for
    a consolidated stream's: venues may cross one another), order sizes positive."""
    if type(snap.seq) is not int or not 0 <= snap.seq <= INT64_MAX:
        return f"seq {snap.seq!r} is not a non-negative int64"
    if type(snap.epoch) is not int or not 0 <= snap.epoch <= INT64_MAX:
        return f"epoch {snap.epoch!r} is not a non-negative int64"
    if type(snap.ts_event) is not int or not INT64_MIN <= snap.ts_event <= INT64_MAX:
        return f"ts_event {snap.ts_event!r} is not an int64"
    problem = _side_problem("bids", snap.bids, True) or _side_problem("asks", snap.asks, False)
    if problem is not None:
        return problem
    crossing = snap.venue == CONSOLIDATED  # venues' books may cross one another: shown as is
    if snap.bids and snap.asks and snap.bids[0][0] >= snap.asks[0][0] and not crossing:
        return f"crossed: best bid {snap.bids[0][0]} >= best ask {snap.asks[0][0]}"
    for order in snap.orders or ():
        size = order[2]
        if type(size) is not int or not 0 < size <= INT64_MAX:
            return f"order {order[3]!r} size {size!r} is not a positive int64"
    return None


class RedisSnapshots:
    """SnapshotStore backed by Redis."""

    def __init__(self, url: str, prefix: str = "md") -> None:
        self.url = url
        self._prefix = prefix
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)

    def _key(self, venue: str, symbol: str) -> str:
        return f"{self._prefix}:book:{venue}:{symbol}"

    async def check(self) -> None:
        """Raise ServiceUnavailable unless Redis answers a PING."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable("Redis", self.url, str(exc) or type(exc).__name__) from None

    async def put(self, snapshot: BookSnapshot) -> None:
        await self._redis.set(self._key(snapshot.venue, snapshot.symbol), encode(snapshot))

    async def get(self, venue: str, symbol: str) -> BookSnapshot | None:
        """The latest snapshot of a book, validated; raise BadSnapshot when it is unusable."""
        key = self._key(venue, symbol)
        data = await self._redis.get(key)
        if data is None:
            return None
        try:
            snap = decode_as(data if isinstance(data, bytes) else data.encode(), BookSnapshot)
        except BadMessage as exc:
            raise BadSnapshot(f"Redis key {key}: {exc}") from None
        if (snap.venue, snap.symbol) != (venue, symbol):
            raise BadSnapshot(f"Redis key {key} does not hold a snapshot of {venue}:{symbol}")
        problem = snapshot_problem(snap)
        if problem is not None:
            raise BadSnapshot(f"Redis key {key}: {problem}")
        return snap

    async def put_instrument(self, instrument: Instrument) -> None:
        await self._redis.hset(
            f"{self._prefix}:instruments",
            f"{instrument.venue}:{instrument.symbol}",
            encode(instrument),
        )

    async def instruments(self) -> list[Instrument]:
        raw = await self._redis.hgetall(f"{self._prefix}:instruments")
        out = []
        for value in raw.values():
            inst = decode(value if isinstance(value, bytes) else value.encode())
            if isinstance(inst, Instrument):
                out.append(inst)
        return out

    async def close(self) -> None:
        await self._redis.aclose()
