"""The node's REST API: instruments, book snapshots, recent trades, candles and tickers.

Served on the WebSocket's port from the same ``process_request`` hook as /metrics
and the page (fanout.node), as JSON with exact decimal strings, like the
WebSocket's messages. docs/rest.md is the reference; ``/openapi.json`` describes
every route (fanout.openapi; tests check both ways that the document and the
routes agree and that real answers fit its schemas).

Access is the WebSocket's: the same credential (``Authorization: Bearer`` or
``?token=``), the key's channels (``/v1/book`` needs ``book``, ``/v1/trades``
``trades``, ``/v1/candles`` ``candles``, ``/v1/ticker`` ``ticker``; instruments any
key), and the key's ``messages_per_s`` (bursts of two seconds' worth) as one
bucket per key on this node, anonymous clients one per address.

A symbol that holds ``/`` (Kraken ``XBT/USD``) is percent-encoded in the path:
``/v1/book/KRAKEN/XBT%2FUSD``; the unencoded ``/v1/book/KRAKEN/XBT/USD`` is
accepted too (everything after the venue is the symbol). Venue and symbol are
resolved as the WebSocket resolves them (fanout.symbols): native symbol or
canonical id, in any case.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from fanout import protocol
from fanout.auth import Grant, credential_in
from fanout.history import FAR_FUTURE, BarHistory, in_range
from fanout.openapi import document
from fanout.protocol import ProtocolError
from fanout.session import Shared
from fanout.stream import RECENT_TRADES, BookStream
from fanout.ticker import Ticker
from hub.auth import RateLimit
from hub.db import time_ns
from hub.ops import response

JSON = "application/json"
MAX_CANDLES = 1000
"""Most bars one candles answer holds."""
DEFAULT_CANDLES = 300
MAX_BUCKETS = 10_000
"""Rate-limit buckets kept (keys and anonymous addresses); beyond it they start afresh."""
STREAM_ROUTES = {"book": "book", "trades": "trades", "candles": "candles", "ticker": "ticker"}
"""Per-stream route → the channel a key needs for it."""
ROUTES = (
    "/openapi.json",
    "/v1/instruments",
    "/v1/book/{venue}/{symbol}",
    "/v1/trades/{venue}/{symbol}",
    "/v1/candles/{venue}/{symbol}",
    "/v1/ticker/{venue}/{symbol}",
)
"""Every route served (the OpenAPI document's paths, checked in tests)."""
PARAMS: dict[str, tuple[str, ...]] = {
    "instruments": ("venue",),
    "book": ("depth",),
    "trades": ("limit",),
    "candles": ("interval", "start", "end", "limit"),
    "ticker": (),
}
"""Query parameters of each route (``token`` is accepted on every one)."""


class Refusal(Exception):
    """An answer other than 200: HTTP status, stable code, message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int = 0,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.details = details or {}
        """Fields beside the message (``choices`` of an ambiguous symbol)."""


def json_response(status: int, body: Any) -> Response:
    out = response(status, orjson.dumps(body), JSON)
    out.headers["Access-Control-Allow-Origin"] = "*"
    return out


def refusal_response(exc: Refusal) -> Response:
    out = json_response(exc.status, {"code": exc.code, "message": str(exc), **exc.details})
    if exc.retry_after:
        out.headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        out.headers["WWW-Authenticate"] = 'Bearer realm="hub"'
    return out


def parse_int(name: str, text: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not low <= int(text) <= high:
        raise Refusal(400, "bad_request", f"{name} must be an integer {low}-{high}, got {text!r}")
    return int(text)


def parse_time(name: str, text: str) -> int:
    """Integer ns since the Unix epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isascii() and text.isdigit():
        return parse_int(name, text, 0, FAR_FUTURE)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refusal(
            400,
            "bad_request",
            f"{name} must be ns since the Unix epoch or an ISO 8601 time, got {text!r}",
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    ns = time_ns(stamp)
    if ns < 0:
        raise Refusal(400, "bad_request", f"{name} is before 1970, got {text!r}")
    return ns


class Rest:
    """Answers the REST routes of one node from its streams (and its bar history)."""

    def __init__(
        self,
        shared: Shared,
        history: BarHistory | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.history = history
        self.clock = clock
        self.limits: dict[str, RateLimit] = {}
        self._openapi = orjson.dumps(document())

    @staticmethod
    def handles(path: str) -> bool:
        """Whether a request path is the REST API's (``/v1/...`` or the OpenAPI document)."""
        return path == "/openapi.json" or path == "/v1" or path.startswith("/v1/")

    async def answer(self, conn: ServerConnection, request: Request) -> Response:
        """The response to one REST request (every refusal a JSON error with its code)."""
        try:
            return await self._answer(conn, request)
        except Refusal as exc:
            return refusal_response(exc)

    async def _answer(self, conn: ServerConnection, request: Request) -> Response:
        parts = urlsplit(request.path)
        if parts.path == "/openapi.json":
            out = response(200, self._openapi, JSON)
            out.headers["Access-Control-Allow-Origin"] = "*"
            return out
        grant = self._admit(conn, request)
        segments = [unquote(s) for s in parts.path.split("/")[2:]]
        route = segments[0] if segments else ""
        if route not in PARAMS or (route == "instruments") != (len(segments) == 1):
            raise Refusal(
                404,
                "not_found",
                f"no route {parts.path!r}; routes: {', '.join(ROUTES)} (docs/rest.md)",
            )
        query = self._query(parts.query, PARAMS[route])
        if route == "instruments":
            return json_response(200, {"instruments": self.instruments(query.get("venue"))})
        channel = STREAM_ROUTES[route]
        if channel not in grant.channels:
            raise Refusal(403, "forbidden", f"key {grant.id!r} may not use the {channel} channel")
        if len(segments) < 3 or not segments[1] or not segments[2]:
            raise Refusal(404, "not_found", f"expected /v1/{route}/{{venue}}/{{symbol}}")
        stream = self.resolve(segments[1], "/".join(segments[2:]))
        if stream.instrument is None:
            raise Refusal(
                503,
                "unavailable",
                f"{stream.venue}:{stream.symbol} has no instrument data yet",
                retry_after=1,
            )
        handler: dict[str, Callable[[BookStream, dict[str, str]], Awaitable[dict[str, Any]]]] = {
            "book": self.book,
            "trades": self.trades,
            "candles": self.candles,
            "ticker": self.ticker,
        }
        return json_response(200, await handler[route](stream, query))

    # --- access -----------------------------------------------------------------------------

    def _admit(self, conn: ServerConnection, request: Request) -> Grant:
        """The request's grant, within its rate limit; else 401 or 429."""
        credential = credential_in(request)
        grant, why = self.shared.keys.check(credential)
        if grant is None:
            raise Refusal(
                401, "unauthenticated", f"authentication failed: {why}" if credential else why
            )
        if grant.key:
            who = f"key:{grant.id}"
        else:
            address = conn.remote_address
            who = f"address:{address[0] if address else '?'}"
        now = self.clock()
        limit = self.limits.get(who)
        if limit is None:
            if len(self.limits) >= MAX_BUCKETS:
                self.limits.clear()
            limit = self.limits[who] = RateLimit(grant.messages_per_s, at=now)
        if not limit.take(now):
            raise Refusal(
                429,
                "rate_limited",
                f"more than {grant.messages_per_s:g} requests per second",
                retry_after=1,
            )
        return grant

    @staticmethod
    def _query(text: str, known: tuple[str, ...]) -> dict[str, str]:
        try:
            raw = parse_qs(text, keep_blank_values=True)
        except ValueError:
            raise Refusal(400, "bad_request", f"malformed query string {text!r}") from None
        out: dict[str, str] = {}
        for name, values in raw.items():
            if name == "token":
                continue
            if name not in known:
                expected = ", ".join(known) if known else "none"
                raise Refusal(
                    400, "bad_request", f"unknown parameter {name!r} (expected: {expected})"
                )
            if len(values) > 1:
                raise Refusal(400, "bad_request", f"parameter {name!r} given more than once")
            out[name] = values[0]
        return out

    def resolve(self, venue: str, symbol: str) -> BookStream:
        """The stream ``symbol`` (native, else canonical id, in any case) names on ``venue``,
        by the node's one resolver (fanout.symbols, the WebSocket's); 404 with its code and
        reason otherwise: ``unknown_venue``, ``unknown_symbol`` (and where it trades),
        ``ambiguous_symbol`` (with ``choices``)."""
        try:
            return self.shared.symbols.resolve(venue, symbol)
        except ProtocolError as exc:
            raise Refusal(404, exc.code, str(exc), details=exc.details) from None

    # --- answers ---------------------------------------------------------------------------

    def instruments(self, venue: str | None) -> list[dict[str, Any]]:
        out = []
        for (v, _s), stream in sorted(self.shared.streams.items()):
            if venue is not None and v != venue:
                continue
            inst = stream.instrument
            listing = None
            if inst is not None and inst.kind:
                listing = {
                    "kind": inst.kind,
                    "base": inst.base,
                    "quote": inst.quote,
                    "settle": inst.settle,
                    "expiry": inst.expiry,
                    "strike": inst.strike,
                    "right": inst.right,
                    "contract_size": inst.contract_size,
                    "inverse": inst.inverse,
                }
            out.append(
                {
                    "venue": stream.venue,
                    "symbol": stream.symbol,
                    "canonical": (inst.canonical or None) if inst is not None else None,
                    "listing": listing,
                    "tick_size": inst.tick_size if inst is not None else None,
                    "lot_size": inst.lot_size if inst is not None else None,
                    "status": stream.venue_status,
                    "synced": stream.synced,
                    "epoch": stream.epoch,
                    "seq": stream.seq,
                    "channels": stream.describe(protocol.CHANNELS)["channels"],
                }
            )
        return out

    @staticmethod
    def _head(stream: BookStream) -> dict[str, Any]:
        inst = stream.instrument
        assert inst is not None
        return {"venue": stream.venue, "symbol": stream.symbol, "canonical": inst.canonical or None}

    async def book(self, stream: BookStream, query: dict[str, str]) -> dict[str, Any]:
        depth = parse_int("depth", query["depth"], 1, protocol.MAX_DEPTH) if "depth" in query else 0
        if not stream.synced:
            raise Refusal(
                503,
                "unavailable",
                f"the book of {stream.venue}:{stream.symbol} is syncing; try again",
                retry_after=1,
            )
        inst = stream.instrument
        assert inst is not None
        book = stream.book
        levels = min(depth or 10, 10)
        return {
            **self._head(stream),
            "epoch": stream.epoch,
            "seq": stream.seq,
            "ts_event": stream.ts_event,
            "depth": depth,
            "bids": protocol.levels(inst, book.depth(0, depth)),
            "asks": protocol.levels(inst, book.depth(1, depth)),
            "checksum": book.checksum(levels),
            "checksum_levels": levels,
        }

    async def trades(self, stream: BookStream, query: dict[str, str]) -> dict[str, Any]:
        limit = (
            parse_int("limit", query["limit"], 1, RECENT_TRADES)
            if "limit" in query
            else RECENT_TRADES
        )
        held = list(stream.recent_trades)[-limit:]
        trades = []
        for _seq, msg in held:
            trade = orjson.loads(msg)
            for name in ("type", "venue", "symbol"):
                trade.pop(name, None)
            trades.append(trade)
        return {**self._head(stream), "epoch": stream.trade_epoch, "trades": trades}

    async def candles(self, stream: BookStream, query: dict[str, str]) -> dict[str, Any]:
        interval = 60
        if "interval" in query:
            interval = parse_int("interval", query["interval"], 1, max(protocol.CANDLE_INTERVALS))
            if interval not in protocol.CANDLE_INTERVALS:
                raise Refusal(
                    400,
                    "bad_request",
                    "interval must be one of "
                    f"{', '.join(map(str, protocol.CANDLE_INTERVALS))} (seconds)",
                )
        start = parse_time("start", query["start"]) if "start" in query else 0
        end = parse_time("end", query["end"]) if "end" in query else FAR_FUTURE
        if end <= start:
            raise Refusal(400, "bad_request", f"end ({end}) must be after start ({start})")
        limit = (
            parse_int("limit", query["limit"], 1, MAX_CANDLES)
            if "limit" in query
            else DEFAULT_CANDLES
        )
        newest = "start" not in query  # no start: the latest bars before end
        inst = stream.instrument
        assert inst is not None
        out: dict[str, Any] = {**self._head(stream), "interval": interval}
        bars = None
        if self.history is not None:
            bars = await self.history.bars(
                stream.venue, stream.symbol, interval, start, end, limit, newest
            )
        out["source"] = "memory" if bars is None else "database"
        if self.history is not None:
            out["database_error"] = self.history.error  # None: it answered
        if bars is None:
            kept = list(stream.candles.get(interval, {}).values())
            bars = in_range(kept, start, end, limit, newest)
        out["bars"] = [protocol.candle(inst, b) for b in bars]
        return out

    async def ticker(self, stream: BookStream, _query: dict[str, str]) -> dict[str, Any]:
        inst = stream.instrument
        assert inst is not None
        ticker: Ticker = stream.ticker
        return {**self._head(stream), **ticker.fields(inst)}
