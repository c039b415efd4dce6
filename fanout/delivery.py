"""What each connection receives: feeds, and a lagging client's conflated queue.

A ``Feed`` is one encoded variant of one channel of one stream (the full
book, the top-10 book with checksums, trades, ...), named by its ``FeedKey``.
A book or l3 feed applies each book update itself: it encodes the update once
(its own diff for a top-N view), advances its seq, keeps the message in its
resume ``History`` and hands it to its targets: a ``Group`` of clients that
share frames, or a ``Client`` on its own queue (fanout.sender decides which
and writes them out).

A lagging client has its book deltas **conflated**: per book feed one pending
message with the latest size of each changed level and the seq range it
covers, and only the newest best bid/offer. Trades are never conflated.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from prometheus_client import Counter
from websockets.asyncio.server import ServerConnection

from fanout import consolidated, protocol
from fanout.auth import Grant
from fanout.stream import BookStream, DepthView
from hub.events import BookUpdate, LevelChange
from hub.ops import metrics
from hub.orders import resting_orders
from orderbook_core.types import CHECKSUM_LEVELS

METRICS = metrics("fanout")

CONFLATIONS = Counter(
    "hub_fanout_conflated_total", "Book deltas merged for lagging clients", registry=METRICS
)


LATEST_ONLY = ("bbo", "ticker")
"""Channels of which a lagging client gets only the newest message (each is whole state)."""


class SubKey(NamedTuple):
    """One subscription of a connection: a channel of a stream (and a candle interval).
    Subscribing again with another depth or checksum replaces it."""

    channel: str
    venue: str
    symbol: str
    interval: int = 0


class FeedKey(NamedTuple):
    """One feed of a node: a channel of a stream in one encoded variant."""

    channel: str
    venue: str
    symbol: str
    param: int = 0
    """Book levels per side (book; 0: the full book) or candle interval (candles)."""
    checksum: bool = False

    @classmethod
    def of(
        cls,
        channel: str,
        venue: str,
        symbol: str,
        depth: int = 0,
        checksum: bool = False,
        interval: int = 0,
    ) -> FeedKey:
        return cls(channel, venue, symbol, depth or interval, checksum)

    @property
    def depth(self) -> int:
        return self.param if self.channel == "book" else 0

    @property
    def interval(self) -> int:
        return self.param if self.channel == "candles" else 0

    @property
    def sub(self) -> SubKey:
        """The subscription this feed serves."""
        return SubKey(self.channel, self.venue, self.symbol, self.interval)

    @property
    def is_view(self) -> bool:
        """A book view (a depth or checksum variant): costs work on every update, so the
        node caps them (fanout.views)."""
        return self.channel == "book" and bool(self.param or self.checksum)


def compact(msg: bytes) -> bytes:
    """A copy of an encoded message in an allocation of its own size, for anything that
    holds messages (history, queues): orjson's result keeps its working buffer."""
    return bytes(memoryview(msg))


class History:
    """A feed's last messages as (first seq, last seq, bytes), oldest first, within a budget
    of ``budget`` payload bytes (the oldest leave first; 0 holds nothing)."""

    __slots__ = ("budget", "bytes", "items")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self.items: deque[tuple[int, int, bytes]] = deque()

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def append(self, first: int, last: int, msg: bytes) -> None:
        if self.budget <= 0:
            return
        items = self.items
        items.append((first, last, msg))
        self.bytes += len(msg)
        while self.bytes > self.budget:
            self.bytes -= len(items.popleft()[2])

    def clear(self) -> None:
        self.items.clear()
        self.bytes = 0

    def after(self, seq: int, current: int) -> list[bytes] | None:
        """The messages a client at ``seq`` needs to reach ``current``, or None when the
        history does not reach back that far (or the client is ahead)."""
        if seq == current:
            return []
        if seq > current or not self.items:
            return None
        out = [msg for _first, last, msg in self.items if last > seq]
        start = next(first for first, last, _ in self.items if last > seq)
        return out if start <= seq + 1 else None


class Feed:
    """One encoded variant of one channel of one stream, and who receives it.

    A book or l3 feed owns its seq (the last book seq its messages cover) and its
    resume history: ``apply`` takes each applied book update, ``resync`` the stream's
    book after a snapshot synced it. Other feeds only ``publish``."""

    __slots__ = (
        "_behind",
        "_history",
        "_seq",
        "channel",
        "checksum",
        "depth",
        "interval",
        "key",
        "permanent",
        "stream",
        "targets",
        "users",
        "view",
    )

    def __init__(self, stream: BookStream, key: FeedKey, history: int = 0) -> None:
        self.stream = stream
        self.key = key
        self.channel = key.channel
        self.depth = key.depth
        self.checksum = key.checksum
        self.interval = key.interval
        self.targets: set[Group | Client] = set()
        self._history = History(history)
        self._seq = 0
        self._behind = False
        self.view = DepthView(self.depth) if self.depth else None
        self.users = 0
        """Subscriptions holding this feed (fanout.views frees it at 0)."""
        self.permanent = False
        """Kept with no subscriber: a stream's full book and l3 (their history)."""
        self.restart()

    @property
    def seq(self) -> int:
        """Book and l3 feeds: the last book seq this feed's messages cover."""
        return self._seq

    @property
    def history(self) -> History:
        """Book and l3 feeds: the last messages within the history budget, for resumes."""
        return self._history

    def checksum_now(self) -> int | None:
        """The checksum a message of this feed at the stream's seq carries: on the full
        book the source's (forwarded, verified by the stream), else a checksum
        variant's of the top N it holds (None: the variant has none)."""
        if self.view is None and self.channel == "book":
            source = self.stream.source_checksum
            if source is not None or not self.checksum:
                return source
        if not self.checksum:
            return None
        levels = CHECKSUM_LEVELS
        return self.stream.book.checksum(min(self.depth or levels, levels))

    def snapshot(self, reason: str) -> bytes:
        """The feed's current book as a snapshot message."""
        s = self.stream
        assert s.instrument is not None
        if self.channel == consolidated.CHANNEL:
            return compact(
                consolidated.encode_snapshot(s, self._seq, reason, s.book.checksum(CHECKSUM_LEVELS))
            )
        if self.channel == "l3":
            orders = () if s.orders is None else resting_orders(s.orders)
            return compact(
                protocol.encode_l3_snapshot(
                    s.instrument, orders, self._seq, s.ts_event, reason, s.epoch
                )
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
                self._seq,
                s.ts_event,
                reason,
                self.depth,
                self.checksum_now() if self.checksum else None,
                s.epoch,
            )
        )

    def restart(self) -> None:
        """Start over from the stream's book (after a resync, or when a view comes back
        into use): the history no longer joins up."""
        self._history.clear()
        self._seq = self.stream.seq
        self._behind = False
        if self.view is not None:
            self.view.reset(self.stream.book)

    def free(self) -> None:
        """Nobody holds the feed any more (fanout.views forgets it): let its history go."""
        self._history.clear()

    def catch_up(self) -> None:
        """Before a subscriber's snapshot: restart a view that skipped updates while
        nobody received it (its levels and seq are behind the book)."""
        if self._behind:
            self.restart()

    def resync(self, reason: str) -> None:
        """The stream's book was synced from a snapshot: restart, and send every
        subscriber a fresh snapshot in place of anything it holds of this feed."""
        self.restart()
        if not self.targets:
            return
        msg = self.snapshot(reason)
        for target in self.targets:
            target.drop_feed_state(self)
        self.publish(msg)

    def replay_after(self, seq: int) -> list[bytes] | None:
        """The messages a client at book seq ``seq`` needs to catch up, or None when the
        history does not reach back that far (or the client is ahead of this node)."""
        return self._history.after(seq, self._seq)

    def apply(self, u: BookUpdate) -> None:
        """Take a book update just applied to the stream's book: encode this feed's message
        for it (the update itself, a view's diff of its top N, or the order changes), keep
        it for resumes and hand it to the targets."""
        inst = self.stream.instrument
        assert inst is not None
        if self.channel == consolidated.CHANNEL:
            first = self._seq + 1
            self._seq = u.seq
            msg = compact(consolidated.encode_delta(self.stream, first, u))
            self._history.append(first, u.seq, msg)
            if self.targets:
                self.publish(msg, u.ts_recv)
            return
        if self.channel == "l3":
            first = self._seq + 1
            self._seq = u.seq
            msg = compact(
                protocol.encode_l3(
                    inst, first, u.seq, u.ts_event, u.ts_recv, u.orders or (), u.epoch
                )
            )
            self._history.append(first, u.seq, msg)
            if self.targets:
                self.publish(msg, u.ts_recv)
            return
        view = self.view
        if view is None:
            self._seq = u.seq
            if self.checksum:  # resumed from the full book's history: none of its own
                if self.targets:
                    msg = protocol.encode_book(
                        inst,
                        u.seq,
                        u.seq,
                        u.ts_event,
                        u.ts_recv,
                        u.changes,
                        0,
                        self.checksum_now(),
                        u.epoch,
                    )
                    self.publish_book(compact(msg), u.seq, u.seq, u.ts_event, u.ts_recv, u.changes)
                return
            msg = compact(
                protocol.encode_book(
                    inst, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes, 0, u.checksum, u.epoch
                )
            )
            self._history.append(u.seq, u.seq, msg)
            if self.targets:
                self.publish_book(msg, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes)
            return
        if not self.targets:
            self._behind = True  # held by a subscription still being set up
            return
        changes = view.diff(self.stream.book, u.changes)
        if not changes:
            return
        first = self._seq + 1
        self._seq = u.seq
        msg = compact(
            protocol.encode_book(
                inst,
                first,
                u.seq,
                u.ts_event,
                u.ts_recv,
                changes,
                self.depth,
                self.checksum_now(),
                u.epoch,
            )
        )
        self._history.append(first, u.seq, msg)
        self.publish_book(msg, first, u.seq, u.ts_event, u.ts_recv, changes)

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

    def __init__(
        self, ws: ServerConnection, grant: Grant, deflate: bool, feeds: dict[SubKey, Feed]
    ) -> None:
        self.ws = ws
        self.grant = grant
        self.deflate = deflate
        self.feeds = feeds
        """Subscriptions and the feed serving each (the connection's session keeps them)."""
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
        self.conflated: dict[Feed, Conflated] = {}
        self.latest_bbo: dict[Feed, bytes] = {}
        self.resets: deque[float] = deque(maxlen=16)
        self.last_sent = time.monotonic()
        self.closing = False

    def buffered(self) -> int:
        """Bytes waiting in this socket's write buffer."""
        transport = self.ws.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def take(self, feed: Feed, msg: bytes, ts: int = 0) -> None:
        if self.lagging and feed.channel in LATEST_ONLY:
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
                    feed.stream.epoch,
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
