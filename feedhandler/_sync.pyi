"""Types of the compiled sync engine (feedhandler._sync); feedhandler.sync's PyBookSync and
PyDelta are its pure-Python twins and document every rule."""

from collections import deque
from collections.abc import Callable
from typing import Any

from hub.events import Event, LevelChange
from orderbook_core import L2Book

class Delta:
    levels: tuple[LevelChange, ...]
    first: int
    last: int
    ts_event: int
    checksum: int | None
    prev: int | None
    def __init__(
        self,
        levels: tuple[LevelChange, ...],
        first: int = 0,
        last: int = 0,
        ts_event: int = 0,
        checksum: int | None = None,
        prev: int | None = None,
    ) -> None: ...

class BookSync:
    venue: str
    symbol: str
    depth: int
    checksum: Callable[[L2Book], int] | None
    continuous: bool
    book: L2Book
    live: bool
    seq: int
    venue_id: int
    stats: Any
    stale_reason: str
    snapshot_at: int
    sink: list[Event] | None
    _buffer: deque[Delta]
    _fresh: bool
    def __init__(
        self,
        venue: str,
        symbol: str,
        depth: int = 0,
        checksum: Callable[[L2Book], int] | None = None,
        continuous: bool = False,
        book: L2Book | None = None,
        live: bool = False,
        seq: int = 0,
        venue_id: int = 0,
        stats: Any = None,
        stale_reason: str = "",
        snapshot_at: int = 0,
        sink: list[Event] | None = None,
    ) -> None: ...
    def snapshot(self, snap: Any, ts_recv: int) -> list[Event]: ...
    def delta(self, d: Any, ts_recv: int) -> list[Event]: ...
    def invalidate(self, reason: str, ts_recv: int = 0) -> list[Event]: ...
    def verify(self, expected: int, ts_recv: int) -> list[Event]: ...
