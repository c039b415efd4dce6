"""The node's feeds: one per variant of a stream's channel, shared and reference-counted.

Every subscriber of the same variant (the top-10 book with checksums of one
symbol, its trades, ...) shares one ``Feed``. A feed lives while someone holds
it and is freed, history and all, when the last subscriber leaves; only the
full book (the resume history of every full-book variant) and the order-level
book of a stream stay for good. Book *views* (depth and checksum variants)
cost work on every update, so a node holds at most ``fanout.max_views`` of
them and one key at most ``fanout.max_views_per_key`` at once.

History is bounded in bytes (``fanout.history_kib`` per feed) and holds
compact copies of the encoded messages (fanout.delivery.compact): the bytes
orjson returns keep its whole working buffer (about 4 KiB) allocated, however
short the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from bus.consolidate import CONSOLIDATED
from fanout import consolidated, protocol
from fanout.delivery import Feed, FeedKey, compact
from fanout.protocol import ChannelRequest, ProtocolError
from fanout.ticker import encode_ticker
from hub.events import BookUpdate
from hub.ops import metrics

METRICS = metrics("fanout")

if TYPE_CHECKING:
    from fanout.stream import BookStream, StreamKey
    from hub.config import FanoutConfig

VIEWS = Gauge(
    "hub_fanout_views", "Book views (depth and checksum variants) in use", registry=METRICS
)
HISTORY_BYTES = Gauge(
    "hub_fanout_history_bytes", "Bytes of messages held for resumes", registry=METRICS
)
RESUMES = Counter(
    "hub_fanout_resumes_total", "Book resumes by outcome", ["outcome"], registry=METRICS
)


class Views:
    """Every feed of one node by key, who holds which view, and the book-update fan-out."""

    def __init__(self, cfg: FanoutConfig) -> None:
        self.cfg = cfg
        self.feeds: dict[tuple[str, str, str, int, bool], Feed] = {}
        """Every feed by its FeedKey (typed as the plain tuple: a lookup may spell it out)."""
        self.book: dict[StreamKey, list[Feed]] = {}
        """Per stream, every book feed (the full book first)."""
        self.held: dict[str, dict[tuple[str, str, str, int, bool], int]] = {}
        """Per holder (key, or anonymous connection): subscriptions per view, by FeedKey."""
        self.views = 0
        VIEWS.set_function(lambda: self.views)
        HISTORY_BYTES.set_function(self.history_bytes)

    def add_stream(self, stream: BookStream) -> None:
        """Register a new stream with its permanent full-book feed."""
        self.book[stream.key] = []
        self._create(stream, FeedKey("book", stream.venue, stream.symbol)).permanent = True

    def get(self, channel: str, venue: str, symbol: str, param: int = 0) -> Feed | None:
        """The feed of a channel (no checksum variant). Looked up on every source event, by
        the plain tuple: it equals the FeedKey and costs a fifth of one to build."""
        return self.feeds.get((channel, venue, symbol, param, False))

    def base(self, stream: BookStream) -> Feed:
        """The stream's full book feed: its history serves every full-book resume."""
        return self.book[stream.key][0]

    def _create(self, stream: BookStream, key: FeedKey) -> Feed:
        budget = self.cfg.history_kib * 1024
        if key.channel not in protocol.SNAPSHOT_CHANNELS or (key.checksum and not key.depth):
            budget = 0  # no resumes, or resumed from the full book's history
        feed = Feed(stream, key, budget)
        self.feeds[key] = feed
        if key.channel == "book":
            self.book[stream.key].append(feed)
            if key.is_view:
                self.views += 1
        elif key.channel in ("l3", consolidated.CHANNEL):
            feed.permanent = True  # one per stream; its history serves resumes
        return feed

    def acquire(self, stream: BookStream, key: FeedKey, holder: str = "") -> Feed:
        """The shared feed of a variant, created if need be, held once more by ``holder``;
        raise ProtocolError ``too_many_views`` beyond the node's or the holder's cap."""
        feed = self.feeds.get(key)
        if key.is_view:
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
            feed = self._create(stream, key)
        feed.users += 1
        return feed

    def release(self, feed: Feed, holder: str = "") -> None:
        """One subscription less; free the feed and its history with the last one."""
        feed.users -= 1
        key = feed.key
        if key.is_view:
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
        feed.free()
        if key.channel == "book":
            self.book[feed.stream.key].remove(feed)
            self.views -= 1

    def history_bytes(self) -> int:
        return sum(f.history.bytes for f in self.feeds.values())

    def status_feeds(self, stream: BookStream) -> list[Feed]:
        """Every feed a stream's status messages go to: its books, l3 and status."""
        feeds = list(self.book.get(stream.key, []))
        for channel in ("l3", "status", consolidated.CHANNEL):
            feed = self.get(channel, stream.venue, stream.symbol)
            if feed is not None:
                feeds.append(feed)
        return feeds

    def initial_book(self, feed: Feed, reason: str) -> bytes:
        """A book or l3 feed's snapshot, or a stale status while its stream syncs."""
        stream = feed.stream
        named = feed.channel != consolidated.CHANNEL or stream.members is not None
        if stream.synced and stream.instrument is not None and named:
            return feed.snapshot(reason)
        return compact(
            protocol.encode_status(
                stream.venue, stream.symbol, "stale", stream.seq, "syncing", stream.epoch
            )
        )

    def replay(
        self, feed: Feed, item: ChannelRequest, answer: dict[str, Any]
    ) -> list[bytes] | None:
        """A resuming subscription's missed messages when the node still holds them, noted
        in the answer (``resume``: ``replayed``; trades: ``gap`` when some are no longer
        held, and then what is held follows); None when it needs its initial state instead
        (``resume``: ``snapshot``): a stream not synced, a ``resume_from`` of another epoch,
        a history that no longer reaches back, and always for bbo and candles (their
        initial state is the latest)."""
        stream = feed.stream
        if item.resume_from is None:
            return None
        if item.channel == "trades":
            return self._replay_trades(stream, item, answer)
        epoch_ok = item.epoch is None or item.epoch == stream.epoch
        if item.channel not in protocol.SNAPSHOT_CHANNELS or not stream.synced or not epoch_ok:
            RESUMES.labels("snapshot").inc()
            answer["resume"] = "snapshot"
            if not epoch_ok:
                answer["epoch"] = stream.epoch
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

    @staticmethod
    def _replay_trades(
        stream: BookStream, item: ChannelRequest, answer: dict[str, Any]
    ) -> list[bytes]:
        """The trades after ``resume_from`` the node holds (all held ones of the current
        epoch when the client's is another), with ``gap`` when some may be missing."""
        assert item.resume_from is not None
        same = item.epoch is None or item.epoch == stream.trade_epoch
        out, complete = stream.trades_after(item.resume_from if same else 0)
        if not same:
            complete = False
        outcome = "replayed" if complete else "gap"
        RESUMES.labels(outcome).inc()
        answer["resume"] = outcome
        answer["replayed"] = len(out)
        answer["epoch"] = stream.trade_epoch
        return out

    def initial(self, feed: Feed, item: ChannelRequest) -> list[bytes]:
        """What a new subscription receives before the live messages."""
        stream = feed.stream
        if item.channel in protocol.SNAPSHOT_CHANNELS:
            feed.catch_up()
            return [self.initial_book(feed, "subscribe")]
        if item.channel == "trades":
            return [msg for _seq, msg in stream.recent_trades]
        if item.channel == "bbo":
            return [stream.bbo_msg] if stream.bbo_msg is not None else []
        if item.channel == "ticker":
            if stream.instrument is None:
                return []
            return [compact(encode_ticker(stream.instrument, stream.ticker))]
        if item.channel == "candles":
            if stream.instrument is None:
                return []
            return [
                protocol.encode_candles(
                    stream.instrument, item.interval, stream.recent_candles(item.interval)
                )
            ]
        state = (stream.venue_status if stream.synced else "stale") or "live"
        return [
            protocol.encode_status(
                stream.venue, stream.symbol, state, stream.seq, "subscribe", stream.epoch
            )
        ]

    def resync(self, stream: BookStream) -> None:
        """The stream synced from a snapshot: every book and l3 feed starts over and sends
        its subscribers a fresh snapshot."""
        more = [self.get(c, stream.venue, stream.symbol) for c in ("l3", consolidated.CHANNEL)]
        for feed in [*self.book[stream.key], *(f for f in more if f is not None)]:
            feed.resync("resync")

    def publish_update(self, stream: BookStream, u: BookUpdate) -> None:
        """Hand an applied book update to every feed that needs it (each encodes its own
        message: fanout.delivery.Feed.apply): the stream's book feeds, l3 or consolidated,
        and bbo."""
        for feed in self.book[stream.key]:
            feed.apply(u)
        if stream.venue == CONSOLIDATED:
            merged = self.get(consolidated.CHANNEL, u.venue, u.symbol)
            if merged is not None:
                merged.apply(u)
        elif u.orders and stream.orders is not None:
            l3 = self.get("l3", u.venue, u.symbol)
            if l3 is not None:
                l3.apply(u)
        if stream.top_changed():
            inst = stream.instrument
            assert inst is not None
            bid, ask = stream.top
            stream.bbo_msg = compact(
                protocol.encode_bbo(inst, u.seq, u.ts_event, u.ts_recv, bid, ask, u.epoch)
            )
            bbo = self.get("bbo", u.venue, u.symbol)
            if bbo is not None and bbo.targets:
                bbo.publish(stream.bbo_msg, u.ts_recv)
