"""The node's feeds: one per variant of a stream's channel, shared and reference-counted.

Every subscriber of the same variant (the top-10 book with checksums of one
symbol, its trades, ...) shares one ``Feed``. A feed lives while someone holds
it and is freed, history and all, when the last subscriber leaves; only the
full book (the resume history of every full-book variant) and the order-level
book of a stream stay for good. Book *views* (depth and checksum variants)
cost work on every update, so a node holds at most ``fanout.max_views`` of
them and one key at most ``fanout.max_views_per_key`` at once.

History is bounded in bytes (``fanout.history_kib`` per feed) and holds
compact copies of the encoded messages: the bytes orjson returns keep its
whole working buffer (about 4 KiB) allocated, however short the message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from fanout import protocol
from fanout.protocol import ChannelRequest, ProtocolError
from hub.events import BookUpdate

if TYPE_CHECKING:
    from fanout.delivery import Feed
    from fanout.stream import BookStream
    from hub.config import FanoutConfig

VIEWS = Gauge("hub_fanout_views", "Book views (depth and checksum variants) in use")
HISTORY_BYTES = Gauge("hub_fanout_history_bytes", "Bytes of messages held for resumes")
RESUMES = Counter("hub_fanout_resumes_total", "Book resumes by outcome", ["outcome"])
FeedKey = tuple[str, str, str, int, bool]
"""(channel, venue, symbol, depth or candle interval, checksum)."""


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


def is_view(channel: str, depth: int, checksum: bool) -> bool:
    """Whether a variant is a book view: costs work on every update, so it is capped."""
    return channel == "book" and bool(depth or checksum)


class Views:
    """Every feed of one node by key, who holds which view, and the book-update fan-out."""

    def __init__(self, cfg: FanoutConfig, make: type[Feed]) -> None:
        self.cfg = cfg
        self._make = make
        self.feeds: dict[FeedKey, Feed] = {}
        self.book: dict[tuple[str, str], list[Feed]] = {}
        """Per stream, every book feed (the full book first)."""
        self.held: dict[str, dict[FeedKey, int]] = {}
        """Per holder (key, or anonymous connection): subscriptions per view."""
        self.views = 0
        VIEWS.set_function(lambda: self.views)
        HISTORY_BYTES.set_function(self.history_bytes)

    def add_stream(self, stream: BookStream) -> None:
        """Register a new stream with its permanent full-book feed."""
        self.book[stream.venue, stream.symbol] = []
        self._create(stream, "book", 0, False, 0).permanent = True

    def get(self, channel: str, venue: str, symbol: str, param: int = 0) -> Feed | None:
        return self.feeds.get((channel, venue, symbol, param, False))

    def base(self, stream: BookStream) -> Feed:
        """The stream's full book feed: its history serves every full-book resume."""
        return self.book[stream.venue, stream.symbol][0]

    def _create(
        self, stream: BookStream, channel: str, depth: int, checksum: bool, interval: int
    ) -> Feed:
        budget = self.cfg.history_kib * 1024
        if channel not in ("book", "l3") or (channel == "book" and checksum and not depth):
            budget = 0  # no resumes, or resumed from the full book's history
        feed = self._make(stream, channel, depth, checksum, budget, interval)
        feed.restart()
        self.feeds[channel, stream.venue, stream.symbol, depth or interval, checksum] = feed
        if channel == "book":
            self.book[stream.venue, stream.symbol].append(feed)
            if depth or checksum:
                self.views += 1
        elif channel == "l3":
            feed.permanent = True  # one per stream; its history serves resumes
        return feed

    def acquire(
        self,
        stream: BookStream,
        channel: str,
        depth: int = 0,
        checksum: bool = False,
        interval: int = 0,
        holder: str = "",
    ) -> Feed:
        """The shared feed of a variant, created if need be, held once more by ``holder``;
        raise ProtocolError ``too_many_views`` beyond the node's or the holder's cap."""
        key = (channel, stream.venue, stream.symbol, depth or interval, checksum)
        feed = self.feeds.get(key)
        view = is_view(channel, depth, checksum)
        if view:
            mine = self.held.setdefault(holder, {})
            cap = self.cfg.max_views_per_key
            if key not in mine and len(mine) >= cap:
                raise ProtocolError(
                    "too_many_views",
                    f"{holder or 'a connection'} may hold at most {cap} book views (depth "
                    "and checksum variants) at once (fanout.max_views_per_key)",
                )
            if feed is None and self.views >= self.cfg.max_views:
                raise ProtocolError(
                    "too_many_views",
                    f"this node serves at most {self.cfg.max_views} book views (depth and "
                    "checksum variants) at once (fanout.max_views); use one already served "
                    "or the full book",
                )
            mine[key] = mine.get(key, 0) + 1
        if feed is None:
            feed = self._create(stream, channel, depth, checksum, interval)
        feed.users += 1
        return feed

    def release(self, feed: Feed, holder: str = "") -> None:
        """One subscription less; free the feed and its history with the last one."""
        feed.users -= 1
        s = feed.stream
        key = (feed.channel, s.venue, s.symbol, feed.depth or feed.interval, feed.checksum)
        if is_view(feed.channel, feed.depth, feed.checksum):
            mine = self.held.get(holder, {})
            left = mine.get(key, 0) - 1
            if left > 0:
                mine[key] = left
            else:
                mine.pop(key, None)
                if not mine:
                    self.held.pop(holder, None)
        if feed.users > 0 or feed.permanent or self.feeds.get(key) is not feed:
            return
        del self.feeds[key]
        feed.history.clear()
        if feed.channel == "book":
            self.book[s.venue, s.symbol].remove(feed)
            self.views -= 1

    def history_bytes(self) -> int:
        return sum(f.history.bytes for f in self.feeds.values())

    def status_feeds(self, stream: BookStream) -> list[Feed]:
        """Every feed a stream's status messages go to: its books, l3 and status."""
        feeds = list(self.book.get((stream.venue, stream.symbol), []))
        for channel in ("l3", "status"):
            feed = self.get(channel, stream.venue, stream.symbol)
            if feed is not None:
                feeds.append(feed)
        return feeds

    def initial_book(self, feed: Feed, reason: str) -> bytes:
        """A book or l3 feed's snapshot, or a stale status while its stream syncs."""
        stream = feed.stream
        if stream.synced and stream.instrument is not None:
            return feed.snapshot(reason)
        return compact(
            protocol.encode_status(stream.venue, stream.symbol, "stale", stream.seq, "syncing")
        )

    def replay(
        self, feed: Feed, item: ChannelRequest, answer: dict[str, Any]
    ) -> list[bytes] | None:
        """A resuming book or l3 subscription's missed messages when the history still
        holds them (a full book's from the stream's full-book history), noted in the answer;
        None when it needs its initial state instead."""
        stream = feed.stream
        if item.channel not in ("book", "l3") or item.resume_from is None or not stream.synced:
            return None
        source = self.base(stream) if item.channel == "book" and not feed.depth else feed
        # A view nobody receives is not kept up to date: its history stops short.
        live = source.view is None or bool(source.targets)
        replay = source.replay_after(item.resume_from) if live else None
        if replay is not None:
            RESUMES.labels("replayed").inc()
            answer["resume"] = "replayed"
            answer["replayed"] = len(replay)
            return replay
        RESUMES.labels("snapshot").inc()
        answer["resume"] = "snapshot"
        return None

    def initial(self, feed: Feed, item: ChannelRequest) -> list[bytes]:
        """What a new subscription receives before the live messages."""
        stream = feed.stream
        if item.channel in ("book", "l3"):
            return [self.initial_book(feed, "subscribe")]
        if item.channel == "trades":
            return list(stream.recent_trades)
        if item.channel == "bbo":
            return [stream.bbo_msg] if stream.bbo_msg is not None else []
        if item.channel == "candles":
            if stream.instrument is None:
                return []
            return [
                protocol.encode_candles(
                    stream.instrument, item.interval, stream.recent_candles(item.interval)
                )
            ]
        state = (stream.venue_status if stream.synced else "stale") or "live"
        return [protocol.encode_status(stream.venue, stream.symbol, state, stream.seq, "subscribe")]

    @staticmethod
    def publish_snapshot(feed: Feed, reason: str) -> None:
        """A fresh snapshot to every subscriber of a feed (after a resync)."""
        if not feed.targets:
            return
        msg = feed.snapshot(reason)
        for target in feed.targets:
            target.drop_feed_state(feed)
        feed.publish(msg)

    def publish_update(self, stream: BookStream, u: BookUpdate) -> None:
        """Encode an applied book update once per feed that needs it and hand it on: the
        full book (kept for resumes), each view in use (its own diff and seq range), l3
        and bbo."""
        inst = stream.instrument
        assert inst is not None
        plain: bytes | None = None
        for feed in self.book[u.venue, u.symbol]:
            if feed.view is None:
                if feed.checksum:
                    feed.seq = u.seq
                    if feed.targets:
                        msg = compact(
                            protocol.encode_book(
                                inst,
                                u.seq,
                                u.seq,
                                u.ts_event,
                                u.ts_recv,
                                u.changes,
                                0,
                                feed.checksum_now(),
                            )
                        )
                        feed.publish_book(msg, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes)
                    continue
                if plain is None:
                    plain = compact(
                        protocol.encode_book(inst, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes)
                    )
                feed.history.append(u.seq, u.seq, plain)
                feed.seq = u.seq
                if feed.targets:
                    feed.publish_book(plain, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes)
                continue
            if not feed.targets:
                continue  # held by a subscription still being set up; restarted when attached
            changes = feed.view.diff(stream.book, u.changes)
            if not changes:
                continue
            first = feed.seq + 1
            feed.seq = u.seq
            msg = compact(
                protocol.encode_book(
                    inst,
                    first,
                    u.seq,
                    u.ts_event,
                    u.ts_recv,
                    changes,
                    feed.depth,
                    feed.checksum_now(),
                )
            )
            feed.history.append(first, u.seq, msg)
            feed.publish_book(msg, first, u.seq, u.ts_event, u.ts_recv, changes)
        l3 = self.get("l3", u.venue, u.symbol)
        if l3 is not None and u.orders and stream.orders is not None:
            first = l3.seq + 1
            l3.seq = u.seq
            msg = compact(protocol.encode_l3(inst, first, u.seq, u.ts_event, u.ts_recv, u.orders))
            l3.history.append(first, u.seq, msg)
            if l3.targets:
                l3.publish(msg, u.ts_recv)
        if stream.top_changed():
            bid, ask = stream.top
            stream.bbo_msg = compact(
                protocol.encode_bbo(inst, u.seq, u.ts_event, u.ts_recv, bid, ask)
            )
            bbo = self.get("bbo", u.venue, u.symbol)
            if bbo is not None and bbo.targets:
                bbo.publish(stream.bbo_msg, u.ts_recv)
