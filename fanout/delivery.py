"""What each connection receives: feeds, and a lagging client's conflated queue.

A ``Feed`` is one encoded variant of one channel of one stream (the full
book, the top-10 book with checksums, trades, ...). Each message is encoded
once per feed and handed to the feed's targets: a ``Group`` of clients that
share frames, or a ``Client`` on its own queue (fanout.sender decides which
and writes them out).

A lagging client has its book deltas **conflated**: per book feed one pending
message with the latest size of each changed level and the seq range it
covers, and only the newest best bid/offer. Trades are never conflated.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from websockets.asyncio.server import ServerConnection

from fanout import protocol
from fanout.auth import Grant
from fanout.stream import BookStream, DepthView
from fanout.views import History, compact
from hub.events import LevelChange
from hub.orders import resting_orders
from orderbook_core.types import CHECKSUM_LEVELS

if TYPE_CHECKING:
    from collections.abc import Iterable

CONFLATIONS = Counter("hub_fanout_conflated_total", "Book deltas merged for lagging clients")


class Feed:
    """One encoded variant of one channel of one stream, and who receives it."""

    __slots__ = (
        "channel",
        "checksum",
        "depth",
        "history",
        "interval",
        "permanent",
        "seq",
        "stream",
        "targets",
        "users",
        "view",
    )

    def __init__(
        self,
        stream: BookStream,
        channel: str,
        depth: int = 0,
        checksum: bool = False,
        history: int = 0,
        interval: int = 0,
    ) -> None:
        self.stream = stream
        self.channel = channel
        self.depth = depth
        self.checksum = checksum
        self.interval = interval
        self.targets: set[Group | Client] = set()
        self.history = History(history)
        """Book and L3 feeds: the last messages within ``history`` bytes, for resumes."""
        self.seq = 0
        """Book and L3 feeds: the last seq this feed's messages cover."""
        self.view = DepthView(depth) if depth else None
        self.users = 0
        """Subscriptions holding this feed (fanout.views frees it at 0)."""
        self.permanent = False
        """Kept with no subscriber: a stream's full book and l3 (their history)."""

    def checksum_now(self) -> int | None:
        if not self.checksum:
            return None
        levels = CHECKSUM_LEVELS
        return self.stream.book.checksum(min(self.depth or levels, levels))

    def snapshot(self, reason: str) -> bytes:
        """The feed's current book as a snapshot message."""
        s = self.stream
        assert s.instrument is not None
        if self.channel == "l3":
            orders = () if s.orders is None else resting_orders(s.orders)
            return compact(
                protocol.encode_l3_snapshot(s.instrument, orders, self.seq, s.ts_event, reason)
            )
        if self.view is None:
            bids, asks = s.book.depth(0), s.book.depth(1)
        else:
            bids, asks = self.view.levels(0), self.view.levels(1)
        return compact(
            protocol.encode_snapshot(
                s.instrument,
                bids,
                asks,
                self.seq,
                s.ts_event,
                reason,
                self.depth,
                self.checksum_now(),
            )
        )

    def restart(self) -> None:
        """Start over from the stream's book (after a resync, or when a view comes back
        into use): the history no longer joins up."""
        self.history.clear()
        self.seq = self.stream.seq
        if self.view is not None:
            self.view.reset(self.stream.book)

    def replay_after(self, seq: int) -> list[bytes] | None:
        """The messages a client at book seq ``seq`` needs to catch up, or None when the
        history does not reach back that far (or the client is ahead of this node)."""
        return self.history.after(seq, self.seq)

    def publish(self, msg: bytes, ts: int = 0) -> None:
        for target in self.targets:
            target.take(self, msg, ts)

    def publish_book(
        self, msg: bytes, first: int, last: int, ts_event: int, ts_recv: int, changes: Any
    ) -> None:
        for target in self.targets:
            target.take_book(self, msg, first, last, ts_event, ts_recv, changes)


class Group:
    """Clients with the same feeds that keep up: one frame per flush for all of them."""

    __slots__ = ("feeds", "last_sent", "members", "oldest", "pending")

    def __init__(self, feeds: frozenset[Feed]) -> None:
        self.feeds = feeds
        self.members: set[Client] = set()
        self.pending: list[bytes] = []
        self.oldest = 0
        self.last_sent = time.monotonic()

    def drop_feed_state(self, _feed: Feed) -> None:
        """Nothing to forget: a group holds no per-feed state."""

    def take(self, _feed: Feed, msg: bytes, ts: int = 0) -> None:
        if not self.pending:
            self.oldest = ts
        self.pending.append(msg)

    def take_book(
        self,
        _feed: Feed,
        msg: bytes,
        _first: int,
        _last: int,
        _ts_event: int,
        ts_recv: int,
        _changes: Any,
    ) -> None:
        if not self.pending:
            self.oldest = ts_recv
        self.pending.append(msg)


class Conflated:
    """A lagging client's pending book delta for one feed: latest size per level."""

    __slots__ = ("first", "last", "levels", "ts_event", "ts_recv")

    def __init__(self, first: int) -> None:
        self.first = first
        self.last = first
        self.levels: dict[tuple[int, int], int] = {}
        self.ts_event = 0
        self.ts_recv = 0

    def merge(self, last: int, ts_event: int, ts_recv: int, changes: Iterable[LevelChange]) -> None:
        levels = self.levels
        for side, price, size in changes:
            levels[side, price] = size
        self.last = last
        self.ts_event = ts_event
        self.ts_recv = ts_recv


class Client:
    """One trader connection: grant, feeds, and (when not in a group) its private queue."""

    def __init__(self, ws: ServerConnection, grant: Grant, deflate: bool) -> None:
        self.ws = ws
        self.grant = grant
        self.deflate = deflate
        self.feeds: dict[tuple[str, str, str, int], Feed] = {}
        """Subscriptions: (channel, venue, symbol, interval) -> the feed serving it."""
        self.group: Group | None = None
        self.pending: list[bytes] = []
        self.oldest = 0
        self.lagging = False
        self.lagging_since = 0.0
        self.progress_at = 0.0
        """While lagging: when the socket's write buffer last shrank (the peer read)."""
        self.last_size = 0
        self.subscribing = False
        """A subscribe request is being worked through in slices: stay on the private queue."""
        self.holder = f"key {grant.id!r}" if grant.key else f"anonymous connection {id(self):x}"
        """Whose book views this connection's count against (fanout.max_views_per_key)."""
        self.conflated: dict[Feed, Conflated] = {}
        self.latest_bbo: dict[Feed, bytes] = {}
        self.resets: deque[float] = deque(maxlen=16)
        self.errors: deque[float] = deque(maxlen=64)
        self.last_sent = time.monotonic()
        self.last_heard = time.monotonic()
        self.closing = False

    def buffered(self) -> int:
        """Bytes waiting in this socket's write buffer."""
        transport = self.ws.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def take(self, feed: Feed, msg: bytes, ts: int = 0) -> None:
        if self.lagging and feed.channel == "bbo":
            self.latest_bbo[feed] = msg
            return
        if not self.pending:
            self.oldest = ts
        self.pending.append(msg)

    def take_book(
        self,
        feed: Feed,
        msg: bytes,
        first: int,
        last: int,
        ts_event: int,
        ts_recv: int,
        changes: Any,
    ) -> None:
        if self.lagging:
            pending = self.conflated.get(feed)
            if pending is None:
                pending = self.conflated[feed] = Conflated(first)
            pending.merge(last, ts_event, ts_recv, changes)
            CONFLATIONS.inc()
            return
        if not self.pending:
            self.oldest = ts_recv
        self.pending.append(msg)

    def push(self, msg: bytes) -> None:
        """A message for this client alone (call ``Delivery.private`` first)."""
        self.pending.append(msg)

    def drain_conflated(self) -> list[bytes]:
        """Encode the conflated deltas and newest bbo messages, and forget them."""
        out = []
        for feed, c in self.conflated.items():
            inst = feed.stream.instrument
            if inst is None:
                continue
            changes = [(side, price, size) for (side, price), size in c.levels.items()]
            out.append(
                protocol.encode_book(
                    inst,
                    c.first,
                    c.last,
                    c.ts_event,
                    c.ts_recv,
                    changes,
                    feed.depth,
                    feed.checksum_now() if c.last == feed.seq else None,
                )
            )
        out.extend(self.latest_bbo.values())
        self.conflated.clear()
        self.latest_bbo.clear()
        return out

    def drop_feed_state(self, feed: Feed) -> None:
        """Forget conflated state of a feed whose next message is a fresh snapshot."""
        self.conflated.pop(feed, None)
        self.latest_bbo.pop(feed, None)
