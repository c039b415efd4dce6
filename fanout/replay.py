"""Replay on demand: the ``/replay`` endpoint of a fanout node (docs/protocol.md "Replay").

Each connection asks for its own recorded sources (``KIND:NAME``, files in the node's
``fanout.replay_dirs``), time range, speed and channels, and gets the live protocol's
messages for them: per stream an ``instrument`` message (its units), then a book
``snapshot`` and ``book`` deltas with seqs and checksums, ``trade`` and ``status``
messages, all sources merged in event time, framed as the live node frames (a JSON array
when several go together), and at the end ``{"type": "replay", "state": "ended"}`` and a
normal close. A stream's book is built from the start of its source whatever ``from``
says: the first message of a stream inside the range is a snapshot of the book at that
moment, so a client never needs the part it skipped.

Speed is a multiple of recorded time (2: twice as fast) or ``max``: as fast as the
client reads (the socket's backpressure paces it; a slow reader slows only its own
replay). The work runs on the node's event loop in slices of ``SLICE_S``, so live
subscribers and other replays keep their latency; at most ``fanout.max_replays`` run at
once. Opening the files is the composition root's (``app``): this module is handed an
``Opener`` and never imports a reader, as fanout knows no feed handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import orjson
from prometheus_client import Counter, Gauge
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from fanout import protocol
from fanout.auth import Keys, credential_in
from fanout.recorded import (
    PoolFor,
    as_async,
    check_recorded,
    is_recorded,
    merged,
    recorded_events,
)
from hub.errors import BadInput, HubError
from hub.events import BookSnapshot, BookUpdate, Event, Instrument, Status, Trade, new_epoch
from hub.ops import metrics
from hub.times import iso_ns_exact
from orderbook_core import L2Book
from orderbook_core.types import CHECKSUM_LEVELS

log = logging.getLogger("hub.fanout")
METRICS = metrics("fanout")
ACTIVE = Gauge("hub_fanout_replays_playing", "Replays playing now", registry=METRICS)
REPLAYS = Counter(
    "hub_fanout_replays_total", "Replay connections by outcome", ["outcome"], registry=METRICS
)
SENT = Counter("hub_fanout_replay_messages_total", "Messages replays sent", registry=METRICS)

CHANNELS = ("book", "trades", "status")
"""What a replay can carry (live-only channels: bbo, candles, ticker, l3, consolidated)."""
MAX_SOURCES = 16
MAX_SYMBOLS = 200
MAX_SPEED = 1_000_000.0
SLICE_S = 0.002
"""Longest stretch of replay work between two yields to the event loop."""
FRAME_BYTES = 64 * 1024
"""A frame is sent once this many bytes of messages are waiting (or a slice ends)."""
REQUEST_TIMEOUT_S = 10.0
"""How long a connection without a request in its URL has to send one."""

FIELDS = ("op", "id", "sources", "from", "to", "speed", "channels", "symbols")
Opener = Callable[[list[str], list[str]], Iterator[Event]]
"""Opens named sources (``KIND:NAME``) for the symbols asked (the ITCH stocks; empty:
all), checking them all first: BadInput naming the bad one; their events merged in time."""


@dataclass(frozen=True)
class ReplayRequest:
    """One connection's replay."""

    sources: tuple[str, ...]
    start_ns: int | None = None
    end_ns: int | None = None
    speed: float | None = None
    """A multiple of recorded time; None: as fast as the client reads."""
    channels: tuple[str, ...] = CHANNELS
    symbols: tuple[str, ...] = ()
    """Native or canonical symbols to replay (any case); empty: every stream."""

    def describe(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "from": self.start_ns,
            "to": self.end_ns,
            "speed": "max" if self.speed is None else self.speed,
            "channels": list(self.channels),
            "symbols": list(self.symbols),
        }


def _names(value: Any, what: str, limit: int) -> tuple[str, ...]:
    """A list of names from a JSON list or a comma-separated string."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadInput(f"{what}: a list of names (or a comma-separated string)")
    if len(value) > limit:
        raise BadInput(f"{what}: at most {limit}, got {len(value)}")
    if any(len(v) > 512 for v in value):
        raise BadInput(f"{what}: a name longer than 512 characters")
    return tuple(value)


def _time(value: Any, what: str) -> int | None:
    """Epoch nanoseconds (a number or digits) or an ISO 8601 UTC time."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and len(value) <= 40:
        with contextlib.suppress(ValueError, OverflowError):
            return iso_ns_exact(value)
    raise BadInput(f"{what} {str(value)[:40]!r}: epoch nanoseconds or an ISO 8601 UTC time")


def _speed(value: Any) -> float | None:
    if value is None or value == "max":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput("speed: a number above 0 (a multiple of recorded time) or 'max'")
    if not 0 < value <= MAX_SPEED:
        raise BadInput(f"speed {value}: above 0 and at most {MAX_SPEED:g}, or 'max'")
    return float(value)


def replay_request(fields: Mapping[str, Any]) -> ReplayRequest:
    """A request from a URL's query (strings; lists comma-separated) or a ``replay``
    message (lists and numbers too); BadInput naming the field that is wrong."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise BadInput(f"unknown replay field {sorted(unknown)[0]!r}")
    if "sources" not in fields:
        raise BadInput("sources: name at least one KIND:NAME (capture, itch, lobster, databento)")
    sources = _names(fields["sources"], "sources", MAX_SOURCES)
    if not sources:
        raise BadInput("sources: name at least one KIND:NAME")
    channels = _names(fields.get("channels", list(CHANNELS)), "channels", len(CHANNELS))
    for channel in channels:
        if channel not in CHANNELS:
            raise BadInput(f"channel {channel!r}: a replay carries {', '.join(CHANNELS)}")
    start, end = _time(fields.get("from"), "from"), _time(fields.get("to"), "to")
    if start is not None and end is not None and end < start:
        raise BadInput(f"to ({end}) is before from ({start})")
    return ReplayRequest(
        sources,
        start,
        end,
        _speed(fields.get("speed")),
        tuple(dict.fromkeys(channels)) or CHANNELS,
        _names(fields.get("symbols", []), "symbols", MAX_SYMBOLS),
    )


def query_fields(path: str) -> dict[str, str]:
    """A URL's query as single values (the last of repeated keys), ``token`` left out."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items() if k != "token"}


class _Stream:
    """One stream of a replay: its units, its book as of the last event, what was sent."""

    __slots__ = ("announced", "book", "broken", "epoch", "fresh", "inst", "seq", "wanted")

    def __init__(self, inst: Instrument, wanted: bool) -> None:
        self.inst = inst
        self.wanted = wanted
        self.book = L2Book()
        self.seq = 0
        self.epoch = new_epoch()
        """The epoch the replay gives events that carry none (file sources): one per
        stream, a new one after a break in its seqs."""
        self.fresh = True
        """The next book message must be a snapshot (first in range, or after a break)."""
        self.broken = False
        self.announced = False


class Player:
    """Turns one replay's events into protocol messages and writes them, paced."""

    def __init__(
        self, ws: ServerConnection, req: ReplayRequest, events: AsyncIterator[Event]
    ) -> None:
        self.ws = ws
        self.req = req
        self.events = events
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.symbols = {s.upper() for s in req.symbols}
        self.book = "book" in req.channels
        self.trades = "trades" in req.channels
        self.status = "status" in req.channels
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.clock = 0
        """Event time of the last event replayed (ns)."""
        self.count = 0
        """Events inside the range (of streams asked for)."""
        self.messages = 0
        self._t0: int | None = None
        self._w0 = 0.0

    def _stream(self, event: Event) -> _Stream | None:
        key = (event.venue, event.symbol)
        st = self.streams.get(key)
        if st is None and isinstance(event, Status):
            st = self._add(Instrument(key[0], key[1], "1", "1"))
        return st

    def _add(self, inst: Instrument) -> _Stream:
        wanted = not self.symbols or bool(
            {inst.symbol.upper(), inst.canonical.upper()} & self.symbols
        )
        st = self.streams[inst.venue, inst.symbol] = _Stream(inst, wanted)
        return st

    def _out(self, st: _Stream, message: bytes) -> None:
        if not st.announced:
            st.announced = True
            inst = st.inst
            self._push(
                protocol.encode(
                    {
                        "type": "instrument",
                        "venue": inst.venue,
                        "symbol": inst.symbol,
                        "canonical": inst.canonical or None,
                        "tick_size": inst.tick_size,
                        "lot_size": inst.lot_size,
                    }
                )
            )
        self._push(message)

    def _push(self, message: bytes) -> None:
        self.pending.append(message)
        self.pending_bytes += len(message)
        self.messages += 1

    def on(self, event: Event, inside: bool) -> None:
        """Keep ``event``'s book; when ``inside`` the range, queue its messages."""
        if isinstance(event, Instrument):
            st = self.streams.get((event.venue, event.symbol))
            if st is None:
                self._add(event)
            elif event != st.inst:  # new units (or listing): said again before what uses them
                st.inst, st.announced = event, False
            return
        st = self._stream(event)
        if st is None:
            return  # no instrument yet: the source's readers always send it first
        if isinstance(event, BookUpdate):
            return self._update(st, event, inside)
        if isinstance(event, BookSnapshot):
            return self._recorded_book(st, event, inside)
        if not (inside and st.wanted):
            return
        if isinstance(event, Trade) and self.trades:
            trade = event if event.epoch else replace(event, epoch=st.epoch)
            self._out(st, protocol.encode_trade(st.inst, trade))
        elif isinstance(event, Status) and self.status:
            reason = event.reason
            self._out(
                st,
                protocol.encode_status(
                    st.inst.venue, st.inst.symbol, event.state, st.seq, reason, st.epoch
                ),
            )
        else:
            return
        self.count += 1

    def _update(self, st: _Stream, update: BookUpdate, inside: bool) -> None:
        if st.seq and update.seq != st.seq + 1:
            st.fresh = True  # another source of the same stream, or a gap in one
            st.epoch = new_epoch()
        st.seq = update.seq
        try:
            st.book.apply(update.changes)
        except (ValueError, OverflowError, TypeError) as exc:
            if not st.broken and self.status and inside and st.wanted:
                why = f"seq {update.seq}: {exc}"[:120]
                self._out(
                    st,
                    protocol.encode_status(
                        st.inst.venue, st.inst.symbol, "stale", st.seq, why, st.epoch
                    ),
                )
            st.broken, st.fresh = True, True
            return
        if not (inside and st.wanted and self.book):
            return
        self.count += 1
        checksum = st.book.checksum(CHECKSUM_LEVELS)
        if st.fresh:
            st.fresh = st.broken = False
            bids, asks = st.book.snapshot()
            self._out(
                st,
                protocol.encode_snapshot(
                    st.inst,
                    bids,
                    asks,
                    st.seq,
                    update.ts_event,
                    "replay",
                    checksum=checksum,
                    epoch=st.epoch,
                ),
            )
            return
        self._out(
            st,
            protocol.encode_book(
                st.inst,
                st.seq,
                st.seq,
                update.ts_event,
                update.ts_recv,
                update.changes,
                checksum=checksum,
                epoch=st.epoch,
            ),
        )

    def _recorded_book(self, st: _Stream, snap: BookSnapshot, inside: bool) -> None:
        """A stored top-of-book snapshot (a ``db:`` source): the book is that, and each
        one goes out as a snapshot of its depth (there are no deltas between them)."""
        st.book.clear()
        st.book.apply([(0, p, s) for p, s in snap.bids])
        st.book.apply([(1, p, s) for p, s in snap.asks])
        st.seq, st.epoch = snap.seq, snap.epoch
        if not (inside and st.wanted and self.book):
            return
        self.count += 1
        bids, asks = st.book.snapshot()
        depth = max(len(bids), len(asks))
        checksum = st.book.checksum(CHECKSUM_LEVELS)
        message = protocol.encode_snapshot(
            st.inst, bids, asks, st.seq, snap.ts_event, "recorded", depth, checksum, st.epoch
        )
        self._out(st, message)

    async def flush(self) -> None:
        if not self.pending:
            return
        frame = self.pending[0] if len(self.pending) == 1 else b"[" + b",".join(self.pending) + b"]"
        SENT.inc(len(self.pending))
        self.pending, self.pending_bytes = [], 0
        await self.ws.send(frame.decode())

    async def _pace(self, at: int) -> None:
        """Wait until event time ``at`` is due at the requested speed."""
        assert self.req.speed is not None
        if self._t0 is None:
            self._t0, self._w0 = at, time.monotonic()
            return
        due = self._w0 + (at - self._t0) / 1e9 / self.req.speed
        wait = due - time.monotonic()
        if wait > 0.001:
            await self.flush()
            await asyncio.sleep(wait)

    async def play(self) -> None:
        req = self.req
        started = time.perf_counter()
        async for event in self.events:
            if not isinstance(event, Instrument):
                at = getattr(event, "ts_event", 0) or getattr(event, "ts_recv", 0)
                if req.end_ns is not None and at > req.end_ns:
                    break
                inside = req.start_ns is None or at >= req.start_ns
                if inside:
                    self.clock = max(self.clock, at)
                    if req.speed is not None:
                        await self._pace(at)
                self.on(event, inside)
            else:
                self.on(event, False)
            if self.pending_bytes >= FRAME_BYTES:
                await self.flush()
            if time.perf_counter() - started > SLICE_S:
                await self.flush()
                await asyncio.sleep(0)
                started = time.perf_counter()
        if self.status:
            for st in self.streams.values():
                if st.announced:
                    closed = protocol.encode_status(
                        st.inst.venue, st.inst.symbol, "closed", st.seq, "replay ended", st.epoch
                    )
                    self._out(st, closed)
        self._push(
            protocol.encode(
                {
                    "type": "replay",
                    "state": "ended",
                    "clock": self.clock,
                    "events": self.count,
                    "messages": self.messages + 1,
                }
            )
        )
        await self.flush()


class Replays:
    """The node's replay endpoint: admission, requests, and the players running."""

    def __init__(
        self, keys: Keys, opener: Opener | None, max_replays: int, pool: PoolFor | None = None
    ) -> None:
        self.keys = keys
        self.opener = opener
        """Opens file sources (set by app when fanout.replay_dirs are set)."""
        self.pool = pool
        """The recorder's database, for ``db:`` sources (fanout.database)."""
        self.max_replays = max_replays
        self.active = 0
        self.served = 0

    async def _fields(self, ws: ServerConnection) -> dict[str, Any]:
        """The request's fields: the URL's query when it names sources, else the first
        message (which must be a ``replay`` op)."""
        fields: dict[str, Any] = query_fields(ws.request.path if ws.request else "")
        if "sources" in fields:
            return fields
        data = await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT_S)
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BadInput("the first message must be a JSON replay request") from None
        if not isinstance(msg, dict) or msg.get("op") != "replay":
            raise BadInput('the first message must be {"op": "replay", "sources": [...]}')
        return msg

    async def serve(self, ws: ServerConnection) -> None:
        """One replay connection, from its handshake to its close."""
        grant, why = self.keys.check(credential_in(ws.request) if ws.request else None)
        if grant is None:
            return await self._refuse(ws, "unauthenticated", f"authentication failed: {why}", 1008)
        if self.opener is None and self.pool is None:
            return await self._refuse(ws, "unavailable", "this node replays nothing", 1008)
        if self.active >= self.max_replays:
            REPLAYS.labels("busy").inc()
            why = f"{self.active} replays are playing (fanout.max_replays); try later"
            return await self._refuse(ws, "too_many_replays", why, 1013)
        fields: dict[str, Any] = {}
        try:
            fields = await self._fields(ws)
            req = replay_request(fields)
            denied = [c for c in req.channels if c not in grant.channels]
            if denied:
                raise BadInput(f"channel {denied[0]!r} is not allowed for this key")
            events = await self._events(req)
        except BadInput as exc:
            REPLAYS.labels("refused").inc()
            return await self._refuse(
                ws, "bad_request", str(exc), 1008, protocol.echo_fields(fields, FIELDS)
            )
        except (TimeoutError, ConnectionClosed):
            REPLAYS.labels("no_request").inc()
            return await self._refuse(ws, "bad_request", "no replay request", 1008)
        self.active += 1
        ACTIVE.set(self.active)
        player = Player(ws, req, events)
        play = asyncio.create_task(self._play(ws, player))
        reader = asyncio.create_task(self._drain(ws))
        try:
            await asyncio.wait({play, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not play.done():  # the client went away (a paced replay may be asleep)
                REPLAYS.labels("left").inc()
                play.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await play
        finally:
            play.cancel()
            reader.cancel()
            self.active -= 1
            self.served += 1
            ACTIVE.set(self.active)
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]

    async def _events(self, req: ReplayRequest) -> AsyncIterator[Event]:
        """The request's sources, every one checked first, as one stream in event time."""
        files = [s for s in req.sources if not is_recorded(s)]
        recorded = [s for s in req.sources if is_recorded(s)]
        streams: list[AsyncIterator[Event]] = []
        if recorded:
            if self.pool is None:
                raise BadInput(f"source {recorded[0]}: this node has no database (fanout.database)")
            try:
                pool = await self.pool()
                for text in recorded:
                    await check_recorded(pool, text)
            except (asyncpg.PostgresError, OSError) as exc:
                raise BadInput(f"source {recorded[0]}: the database failed: {exc}") from exc
            trades, books = "trades" in req.channels, "book" in req.channels
            for text in recorded:
                streams.append(recorded_events(pool, text, req.start_ns, req.end_ns, trades, books))
        if files:
            if self.opener is None:
                raise BadInput(
                    f"source {files[0]}: this node replays no files (fanout.replay_dirs)"
                )
            streams.append(as_async(self.opener(files, list(req.symbols))))
        return merged(streams)

    async def _play(self, ws: ServerConnection, player: Player) -> None:
        req = player.req
        try:
            playing = {"type": "replay", "state": "playing", **req.describe()}
            await ws.send(protocol.encode(playing).decode())
            await player.play()
            REPLAYS.labels("ended").inc()
            log.info(
                "replay ended",
                extra={
                    "sources": list(req.sources),
                    "events": player.count,
                    "messages": player.messages,
                },
            )
            await ws.close(1000, "replay ended")
        except (HubError, asyncpg.PostgresError, OSError) as exc:  # unreadable part way
            REPLAYS.labels("failed").inc()
            log.warning("replay failed", extra={"sources": list(req.sources), "why": str(exc)})
            with contextlib.suppress(ConnectionClosed):
                await player.flush()
            await self._refuse(ws, "bad_source", str(exc), 1011)
        except ConnectionClosed:
            REPLAYS.labels("left").inc()  # the client went away: its replay stops here

    async def _drain(self, ws: ServerConnection) -> None:
        """Read what the client sends while it plays: pings answered, the rest ignored
        (the page sends its request again as a first message)."""
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                with contextlib.suppress(orjson.JSONDecodeError):
                    msg = orjson.loads(data)
                    if isinstance(msg, dict) and msg.get("op") == "ping":
                        await ws.send(
                            protocol.encode({"type": "pong", "id": msg.get("id")}).decode()
                        )

    async def _refuse(
        self, ws: ServerConnection, code: str, why: str, close: int, request: Any = None
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(protocol.error(code, why, request=request).decode())
            await ws.close(close, why[:120])

    def health(self) -> dict[str, Any]:
        return {"playing": self.active, "served": self.served, "max": self.max_replays}
