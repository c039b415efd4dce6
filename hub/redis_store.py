"""Latest book snapshots and instrument data in Redis.

One key per book, ``<prefix>:book:<venue>:<symbol>``, holding the encoded
snapshot (its seq inside), written with a single SET so readers never see a
snapshot without its seq. Instruments live in the hash ``<prefix>:instruments``.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub.errors import ServiceUnavailable
from hub.events import BookSnapshot, Instrument, decode, encode


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
        data = await self._redis.get(self._key(venue, symbol))
        if data is None:
            return None
        snap = decode(data if isinstance(data, bytes) else data.encode())
        return snap if isinstance(snap, BookSnapshot) else None

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
