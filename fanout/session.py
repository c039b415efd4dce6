"""One connection's session, sans-I/O: authentication, limits, requests and subscriptions.

Modelled on websockets' ``Protocol``: the node's connection handler
(fanout.node) hands in each client message with the time (``receive``), calls
``tick`` at the session's deadlines (no credential in time, an idle client) and
carries out what comes back, in order:

- ``bytes``: a message for this connection alone;
- ``Close(code, reason)``: close the connection (1008: a rule broken, 1013: try later);
- ``Attach(feed)`` / ``Detach(feed)``: start or stop delivering a feed to the connection.

No sockets and no asyncio: a session reads and changes only plain state that the
sessions of a node share (``Shared``: keys, streams, feeds and views, connection
counts), so tests drive it with messages and times alone.

A subscribe is answered at once; the initial state of its new subscriptions
(snapshots) comes from ``set_up``, one subscription a call, so that the node can
yield to the event loop in between: a large request never delays anyone else.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from prometheus_client import Counter

from bus.consolidate import CONSOLIDATED
from fanout import consolidated, protocol
from fanout.auth import Grant, Keys
from fanout.delivery import Feed, FeedKey, SubKey, compact
from fanout.protocol import ChannelRequest, ProtocolError, Request
from fanout.stream import BookStream
from fanout.symbols import Symbols
from fanout.views import Views
from hub.auth import RateLimit
from hub.config import FanoutConfig
from hub.events import Instrument
from hub.ops import metrics

METRICS = metrics("fanout")

REFUSED = Counter(
    "hub_fanout_refused_total", "Connections and requests refused", ["code"], registry=METRICS
)
ERROR_WINDOW_S = 10.0
"""A session with more than ``fanout.max_errors`` refused requests in this window is closed."""
MAX_CLOSE_REASON = 120
"""Longest close reason sent (a close frame's reason must fit 123 bytes)."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Attach:
    """Deliver this feed's messages to the connection from now on."""

    feed: Feed


@dataclass(frozen=True, slots=True)
class Detach:
    """Stop delivering this feed, and forget what is pending of it."""

    feed: Feed


Output = bytes | Close | Attach | Detach


class State(Enum):
    AUTH = "auth"
    """Waiting for an ``auth`` message."""
    OPEN = "open"
    CLOSED = "closed"


@dataclass
class Shared:
    """What the sessions of one node share: settings, keys, streams, feeds, counts."""

    cfg: FanoutConfig
    keys: Keys
    views: Views
    name: str = "fanout"
    streams: dict[tuple[str, str], BookStream] = field(default_factory=dict)
    """Every stream by its StreamKey (typed as the plain tuple: a lookup may spell it out)."""
    symbols: Symbols = field(default_factory=Symbols)
    """What a subscription's (venue, symbol) names: native symbol or canonical id."""
    connections: int = 0
    per_key: dict[str, int] = field(default_factory=dict)
    """Open sessions per key id."""

    def add_stream(self, stream: BookStream) -> None:
        self.streams[stream.key] = stream
        if stream.venue != CONSOLIDATED:  # reached by its own channel only
            self.symbols.add(stream)
        self.views.add_stream(stream)

    def set_instrument(self, stream: BookStream, inst: Instrument) -> None:
        """The stream's instrument arrived (or changed): it is found by its canonical id."""
        stream.instrument = inst
        while stream.early_trades:  # the trades that came before it, held for new subscribers
            trade = stream.early_trades.popleft()
            stream.recent_trades.append((trade.seq, compact(protocol.encode_trade(inst, trade))))
        if stream.venue != CONSOLIDATED:
            self.symbols.listed(stream)

    def stream_list(self) -> list[dict[str, Any]]:
        return [s.describe(protocol.CHANNELS) for _key, s in sorted(self.streams.items())]

    def admits(self, grant: Grant) -> bool:
        """Whether the node and the grant's key have room for one more connection."""
        if self.connections >= self.cfg.max_connections:
            return False
        return not grant.key or self.per_key.get(grant.id, 0) < grant.max_connections


class Session:
    """One connection's protocol state, from its credential to its last subscription."""

    def __init__(self, shared: Shared, now: float, deflate: bool = False) -> None:
        self.shared = shared
        self.deflate = deflate
        """Whether the connection compresses (told to the client in its welcome)."""
        self.state = State.AUTH
        self.grant: Grant | None = None
        self.holder = ""
        """Whose book views this session's count against (fanout.max_views_per_key)."""
        self.feeds: dict[SubKey, Feed] = {}
        """Subscriptions and the feed serving each."""
        self.auth_by = now + shared.cfg.auth_timeout_s
        self.last_heard = now
        self.limit = RateLimit(0.0, at=now)
        self.errors: deque[float] = deque(maxlen=64)
        self._todo: deque[tuple[SubKey, ChannelRequest, Feed]] = deque()

    # --- opening and closing -------------------------------------------------------------

    def connect(self, credential: str | None, now: float) -> list[Output]:
        """Start with the handshake's credential (None: it had none): open or refuse at
        once when it (or anonymous access) decides, else wait for an ``auth`` message."""
        if credential is None and self.shared.keys.anonymous is None:
            return []
        return self._admit(credential, now)

    def _admit(self, credential: str | None, now: float) -> list[Output]:
        grant, why = self.shared.keys.check(credential)
        if grant is None:
            return self._turn_away("unauthenticated", 1008, f"authentication failed: {why}")
        if not self.shared.admits(grant):
            return self._turn_away(
                "too_many_connections", 1013, "too many connections; try later or elsewhere"
            )
        self.state = State.OPEN
        self.grant = grant
        self.holder = f"key {grant.id!r}" if grant.key else f"anonymous connection {id(self):x}"
        self.limit = RateLimit(grant.messages_per_s, at=now)
        self.last_heard = now
        shared = self.shared
        shared.connections += 1
        shared.per_key[grant.id] = shared.per_key.get(grant.id, 0) + 1
        welcome = {"type": "welcome", "node": shared.name, "key": grant.id, "deflate": self.deflate}
        return [protocol.encode(welcome)]

    def _turn_away(self, code: str, close_code: int, reason: str) -> list[Output]:
        REFUSED.labels(code).inc()
        self.state = State.CLOSED
        return [Close(close_code, reason[:MAX_CLOSE_REASON])]

    def tick(self, now: float) -> list[Output]:
        """Close a session past its deadline: no credential within ``auth_timeout_s``, or
        once open, no message from the client for ``client_timeout_s``."""
        if self.state is State.AUTH and now >= self.auth_by:
            return self._turn_away(
                "unauthenticated", 1008, "authentication required: no credential in time"
            )
        timeout = self.shared.cfg.client_timeout_s
        if self.state is State.OPEN and timeout and now - self.last_heard > timeout:
            return self._turn_away("idle", 1008, f"idle: no message from the client in {timeout} s")
        return []

    def ended(self) -> list[Output]:
        """The connection is gone: give back every subscription and its place in the
        node's counts."""
        self.cancel_set_up()
        out: list[Output] = []
        for sub in list(self.feeds):
            out.extend(self._detach(sub))
        if self.grant is not None:
            self.shared.connections -= 1
            self.shared.per_key[self.grant.id] -= 1
            self.grant = None
        self.state = State.CLOSED
        return out

    # --- client messages -----------------------------------------------------------------

    def receive(self, data: str | bytes, now: float, wall_ns: int) -> list[Output]:
        """Answer one client message received at monotonic time ``now`` (``wall_ns``: the
        wall clock, for pongs)."""
        if self.state is State.AUTH:
            return self._authenticate(data, now)
        if self.state is State.CLOSED:
            return []
        self.last_heard = now
        if not self.limit.take(now):
            rate = self.limit.rate
            return self._refuse(
                ProtocolError("rate_limited", f"more than {rate:g} messages per second"), now
            )
        try:
            req = protocol.parse_request(data)
        except ProtocolError as exc:
            return self._refuse(exc, now)
        if req.op == "ping":
            return [protocol.encode({"type": "pong", "id": req.id, "ts": wall_ns})]
        if req.op == "list":
            streams = self.shared.stream_list()
            return [protocol.encode({"type": "streams", "id": req.id, "streams": streams})]
        if req.op == "auth":
            return self._refuse(ProtocolError("bad_request", "already authenticated"), now, req.id)
        return self._subscribe(req)

    def _authenticate(self, data: str | bytes, now: float) -> list[Output]:
        """The first message of a connection without a credential: it must be ``auth``."""
        try:
            req = protocol.parse_request(data)
            if req.op != "auth":
                raise ProtocolError("unauthenticated", "send {'op': 'auth'} first")
        except ProtocolError as exc:
            return self._turn_away("unauthenticated", 1008, f"authentication required: {exc}")
        return self._admit(req.token, now)

    def _refuse(self, exc: ProtocolError, now: float, ident: Any = None) -> list[Output]:
        """An error message; a client that keeps sending bad requests is disconnected."""
        REFUSED.labels(exc.code).inc()
        self.errors.append(now)
        recent = sum(1 for t in self.errors if now - t <= ERROR_WINDOW_S)
        if recent > self.shared.cfg.max_errors:
            self.state = State.CLOSED
            return [Close(1008, f"too many bad requests ({recent} in {ERROR_WINDOW_S:.0f} s)")]
        return [protocol.error(exc.code, str(exc), ident, exc.request)]

    # --- subscriptions -------------------------------------------------------------------

    def _resolve(self, item: ChannelRequest) -> BookStream:
        assert self.grant is not None
        if item.channel not in self.grant.channels:
            raise ProtocolError(
                "forbidden", f"key {self.grant.id!r} may not use the {item.channel} channel"
            )
        if item.channel == consolidated.CHANNEL:
            return consolidated.resolve(self.shared.streams, item.symbol)
        stream = self.shared.symbols.resolve(item.venue, item.symbol)
        if item.channel == "l3" and stream.synced and stream.orders is None:
            raise ProtocolError(
                "unavailable",
                f"no order-level (L3) data for {stream.symbol!r}: its source publishes levels only",
            )
        return stream

    def _subscribe(self, req: Request) -> list[Output]:
        """Answer a (un)subscribe request. Unsubscribes and resumes the history covers take
        effect at once; every other new subscription holds its feed and waits for
        ``set_up``."""
        assert self.grant is not None
        views = self.shared.views
        out: list[Output] = []
        accepted: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        early: list[bytes] = []
        todo: dict[SubKey, tuple[ChannelRequest, Feed]] = {}
        """Per subscription, the last entry of this request for it and its (held) feed."""
        added = 0  # subscriptions in todo the session does not hold yet
        for item in req.channels:
            if isinstance(item, ProtocolError):
                refused.append({"request": item.request, "code": item.code, "reason": str(item)})
                continue
            try:
                stream = self._resolve(item)
            except ProtocolError as exc:
                REFUSED.labels(exc.code).inc()
                refused.append(
                    {"request": item.raw, "code": exc.code, "reason": str(exc), **exc.details}
                )
                continue
            key = FeedKey.of(
                item.channel, stream.venue, stream.symbol, item.depth, item.checksum, item.interval
            )
            sub = key.sub
            answer: dict[str, Any] = {
                "channel": item.channel,
                "venue": stream.venue,
                "symbol": stream.symbol,
            }
            if req.op == "unsubscribe":
                out.extend(self._detach(sub))
                accepted.append(answer)
                continue
            limit = self.grant.max_subscriptions
            if sub not in self.feeds and sub not in todo and len(self.feeds) + added >= limit:
                REFUSED.labels("too_many_subscriptions").inc()
                refused.append(
                    {
                        "request": item.raw,
                        "code": "too_many_subscriptions",
                        "reason": f"at most {limit} per connection",
                    }
                )
                continue
            try:
                feed = views.acquire(stream, key, self.holder)
            except ProtocolError as exc:
                REFUSED.labels(exc.code).inc()
                refused.append({"request": item.raw, "code": exc.code, "reason": str(exc)})
                continue
            if item.depth:
                answer["depth"] = item.depth
            if item.interval:
                answer["interval"] = item.interval
            if item.checksum:
                answer["checksum"] = True
            accepted.append(answer)
            replaced = todo.pop(sub, None)
            if replaced is not None:  # the last entry for a subscription wins
                views.release(replaced[1], self.holder)
                added -= sub not in self.feeds
            replay = views.replay(feed, item, answer)
            if replay is None:
                todo[sub] = (item, feed)
                added += sub not in self.feeds
            else:
                out.extend(self._attach(sub, feed))
                early.extend(replay)
        answer_msg = {"type": f"{req.op}d", "id": req.id, "accepted": accepted, "refused": refused}
        out.append(protocol.encode(answer_msg))
        out.extend(early)
        self._todo.extend((sub, item, feed) for sub, (item, feed) in todo.items())
        return out

    @property
    def setting_up(self) -> bool:
        """Whether subscriptions of the last subscribe wait for their initial state."""
        return bool(self._todo)

    def set_up(self) -> list[Output]:
        """Attach the next waiting subscription and send its initial state ([] when none
        waits)."""
        if not self._todo:
            return []
        sub, item, feed = self._todo.popleft()
        return [*self._attach(sub, feed), *self.shared.views.initial(feed, item)]

    def cancel_set_up(self) -> None:
        """Give back the feeds of the subscriptions still waiting (the connection closes)."""
        while self._todo:
            _sub, _item, feed = self._todo.popleft()
            self.shared.views.release(feed, self.holder)

    def _attach(self, sub: SubKey, feed: Feed) -> list[Output]:
        """Make ``feed`` (held for this session) serve subscription ``sub``."""
        out = self._detach(sub)
        self.feeds[sub] = feed
        out.append(Attach(feed))
        return out

    def _detach(self, sub: SubKey) -> list[Output]:
        feed = self.feeds.pop(sub, None)
        if feed is None:
            return []
        self.shared.views.release(feed, self.holder)
        return [Detach(feed)]
