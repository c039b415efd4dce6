"""The traders' WebSocket protocol: client-request parsing and server-message encoding.

Server frames are JSON arrays of messages, so one frame carries many updates.
Prices and sizes are exact decimal strings; times are integer ns. Each message
is encoded once per update and shared by every subscriber of its feed.
docs/protocol.md is the reference for clients.

Parsing is sans-I/O and total: every message first passes the strict schema step
shared with order entry (``hub.wire``: size, nesting, types and lengths), and any
input either becomes a ``Request`` or raises ``ProtocolError`` with a stable code
(fuzzed in the tests). A refused entry is echoed with its checked fields only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from hub import wire
from hub.auth import MAX_CREDENTIAL
from hub.errors import BadInput
from hub.events import BAR_INTERVALS, TRADE_SIDES, Bar, Instrument, OrderChange, RestingOrder, Trade
from hub.orders import CLEAR
from orderbook_core.types import Action

CHANNELS = ("book", "trades", "bbo", "candles", "status", "l3", "ticker", "consolidated")
CANDLE_INTERVALS = BAR_INTERVALS
"""Candle intervals in seconds, the recorder's bar intervals."""
RESUMABLE = ("book", "l3", "trades", "bbo", "candles", "consolidated")
"""Channels whose subscriptions take ``resume_from`` (and its ``epoch``)."""
SNAPSHOT_CHANNELS = ("book", "l3", "consolidated")
"""Channels that start with a snapshot and resume from the feed's history by seq."""
OPS = ("subscribe", "unsubscribe", "ping", "list", "auth")
MAX_DEPTH = 1000
"""Most book levels per side a subscription may ask for."""
MAX_REQUEST_BYTES = 64 * 1024
"""Longest client message (UTF-8 bytes)."""
MAX_NESTING = 8
"""Deepest nesting of a client message (the protocol itself needs 3: request, list, entry)."""
MAX_ITEMS = 200
"""Most channels in one (un)subscribe request."""
MAX_NAME = 64
"""Longest symbol, venue or request id (characters)."""
REQUEST_FIELDS: wire.Schema = {
    "op": wire.Field("text", 32),
    "id": wire.Field("id", MAX_NAME),
    "channels": wire.Field("list", MAX_ITEMS),
    "token": wire.Field("text", MAX_CREDENTIAL),
}
ENTRY_FIELDS: wire.Schema = {
    "channel": wire.Field("text", 16, required=True),
    "symbol": wire.Field("text", MAX_NAME, required=True),
    "venue": wire.Field("text", MAX_NAME),
    "depth": wire.Field("int", low=1, high=MAX_DEPTH),
    "checksum": wire.Field("bool"),
    "interval": wire.Field("int", low=1, high=max(CANDLE_INTERVALS)),
    "resume_from": wire.Field("int", low=0),
    "epoch": wire.Field("int", low=0),
}
WIRE_CODES = {"binary_frame": "binary_frame", "too_large": "too_large", "bad_json": "bad_json"}
"""The schema step's refusals that keep their own error code (the rest are bad_request)."""


class ProtocolError(BadInput):
    """A client request is malformed or refused; ``code`` is the stable error code and
    ``details`` the fields a refusal adds beside its reason (``choices``)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}
        self.request: Any = None
        """What failed, echoed to the client: a subscribe entry (its known fields, bounded),
        or a request's ``op`` and ``id`` (None: nothing to echo, e.g. not JSON)."""


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """One entry of a (un)subscribe request, validated; ``venue`` may still be unknown."""

    channel: str
    symbol: str
    venue: str | None = None
    depth: int = 0
    """Book levels per side (0: the full book)."""
    checksum: bool = False
    interval: int = 0
    """Candle interval in seconds."""
    resume_from: int | None = None
    """The last seq the client applied: book seq (book, l3, bbo) or trade seq (trades)."""
    epoch: int | None = None
    """The epoch of ``resume_from`` (None: the stream's current one, for older clients)."""
    raw: Any = None
    """The entry's checked fields as the client sent them (echoed in refusals)."""


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    id: Any = None
    channels: tuple[ChannelRequest | ProtocolError, ...] = ()
    """Entries that failed validation stay in place as the error to refuse them with."""
    token: str | None = None


def _channel(item: Any, where: str) -> ChannelRequest:
    if not isinstance(item, dict):
        raise ProtocolError("bad_request", f"{where} must be an object, got {wire.shown(item)}")
    channel = item.get("channel")
    if not isinstance(channel, str) or channel not in CHANNELS:
        raise ProtocolError(
            "unknown_channel",
            f"unknown channel {wire.shown(channel)}; one of {', '.join(CHANNELS)}",
        )
    refusal = wire.check(item, ENTRY_FIELDS, where)
    if refusal is not None:
        raise ProtocolError("bad_request", refusal.text)
    depth, interval = 0, 0
    checksum: bool = item.get("checksum", False)
    resume: int | None = item.get("resume_from") if channel in RESUMABLE else None
    if channel == "book":
        depth = item.get("depth", 0)
    elif channel == "candles":
        interval = item.get("interval", 60)
        if interval not in CANDLE_INTERVALS:
            raise ProtocolError(
                "bad_request",
                f"{where}.interval must be one of "
                f"{', '.join(map(str, CANDLE_INTERVALS))} (seconds)",
            )
    checksum = checksum and channel == "book"
    # Echoed in refusals: the checked fields only, each a bounded scalar.
    echo = {k: item[k] for k in ENTRY_FIELDS if k in item}
    return ChannelRequest(
        channel,
        item["symbol"],
        item.get("venue"),
        depth,
        checksum,
        interval,
        resume,
        item.get("epoch") if resume is not None else None,
        echo,
    )


def parse_request(data: str | bytes) -> Request:
    """Parse one client message through the strict schema step (hub.wire); raise
    ProtocolError with a stable code, never anything else."""
    msg = wire.decode(data, MAX_REQUEST_BYTES, MAX_NESTING)
    if isinstance(msg, wire.Refusal):
        raise ProtocolError(WIRE_CODES.get(msg.code, "bad_request"), msg.text)
    try:
        return _request(msg)
    except ProtocolError as exc:
        exc.request = _echo(msg)
        raise


def echo_entry(item: Any) -> Any:
    """A refused entry as its refusal echoes it, bounded whatever was sent: the entry's
    known fields, each value as sent where it is a short string, an int64 or a bool (else
    as refusals quote values: ``wire.shown``); an entry that is not an object, quoted."""
    if not isinstance(item, dict):
        return _echo_value(item)
    return {k: _echo_value(item[k]) for k in ENTRY_FIELDS if k in item}


def echo_fields(item: Any, names: tuple[str, ...]) -> Any:
    """As ``echo_entry``, for a message whose fields are ``names`` (a replay request)."""
    if not isinstance(item, dict):
        return _echo_value(item)
    return {k: _echo_value(item[k]) for k in names if k in item}


def _echo_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, str) and len(value) <= MAX_NAME:
        return value
    return wire.shown(value)


def _echo(msg: Any) -> dict[str, Any] | None:
    """A refused request's ``op`` and ``id``, each where it is a short string or an int."""
    if not isinstance(msg, dict):
        return None
    out: dict[str, Any] = {}
    for name in ("op", "id"):
        value = msg.get(name)
        short = isinstance(value, str) and len(value) <= MAX_NAME
        if short or (isinstance(value, int) and not isinstance(value, bool)):
            out[name] = value
    return out


def _request(msg: Any) -> Request:
    op = msg.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise ProtocolError("unknown_op", f"unknown op {wire.shown(op)}; expected {', '.join(OPS)}")
    items = msg.get("channels")
    if isinstance(items, list) and len(items) > MAX_ITEMS:
        raise ProtocolError("too_many", f"at most {MAX_ITEMS} channels per request")
    refusal = wire.check(msg, REQUEST_FIELDS)
    if refusal is not None:
        raise ProtocolError("bad_request", refusal.text)
    ident = msg.get("id")
    if op == "auth":
        token = msg.get("token")
        if token is None:
            raise ProtocolError("bad_request", "token must be the API key or a signed JWT")
        return Request(op, ident, token=token)
    if op in ("subscribe", "unsubscribe"):
        if not items:
            raise ProtocolError("bad_request", "channels must be a non-empty list")
        parsed: list[ChannelRequest | ProtocolError] = []
        for i, item in enumerate(items):
            try:
                parsed.append(_channel(item, f"channels[{i}]"))
            except ProtocolError as exc:
                exc.request = echo_entry(item)  # the client can tell which entry it was
                parsed.append(exc)
        return Request(op, ident, tuple(parsed))
    return Request(op, ident)


# --- server messages ---------------------------------------------------------------------


def levels(inst: Instrument, raw: list[tuple[int, int]]) -> list[list[str]]:
    tick, lot = inst.tick, inst.lot
    return [[tick.to_str(p), lot.to_str(s)] for p, s in raw]


def split_changes(inst: Instrument, changes: Any) -> tuple[list[list[str]], list[list[str]]]:
    """(bids, asks) of [price, size] strings from (side, price, size) changes."""
    tick, lot = inst.tick, inst.lot
    bids = [[tick.to_str(p), lot.to_str(s)] for side, p, s in changes if side == 0]
    asks = [[tick.to_str(p), lot.to_str(s)] for side, p, s in changes if side == 1]
    return bids, asks


def _delta(
    kind: str, inst: Instrument, first: int, seq: int, ts_event: int, ts_recv: int, epoch: int
) -> dict[str, Any]:
    """The head every seq-ranged message (book, l3) starts with."""
    return {
        "type": kind,
        "venue": inst.venue,
        "symbol": inst.symbol,
        "epoch": epoch,
        "first": first,
        "seq": seq,
        "ts_event": ts_event,
        "ts_recv": ts_recv,
    }


def encode_book(
    inst: Instrument,
    first: int,
    seq: int,
    ts_event: int,
    ts_recv: int,
    changes: Any,
    depth: int = 0,
    checksum: int | None = None,
    epoch: int = 0,
) -> bytes:
    """A book delta covering book updates ``first``..``seq`` of ``epoch``; ``checksum``
    is the book's after ``seq`` (the source's on full-book feeds)."""
    bids, asks = split_changes(inst, changes)
    msg = _delta("book", inst, first, seq, ts_event, ts_recv, epoch)
    msg["bids"], msg["asks"] = bids, asks
    if depth:
        msg["depth"] = depth
    if checksum is not None:
        msg["checksum"] = checksum
    return orjson.dumps(msg)


def _canonical(inst: Instrument) -> dict[str, str]:
    """A snapshot's ``canonical`` beside the native symbol (none where it has none)."""
    return {"canonical": inst.canonical} if inst.canonical else {}


def encode_snapshot(
    inst: Instrument,
    bids: list[tuple[int, int]],
    asks: list[tuple[int, int]],
    seq: int,
    ts_event: int,
    reason: str,
    depth: int = 0,
    checksum: int | None = None,
    epoch: int = 0,
) -> bytes:
    msg: dict[str, Any] = {
        "type": "snapshot",
        "channel": "book",
        "venue": inst.venue,
        "symbol": inst.symbol,
        **_canonical(inst),
        "epoch": epoch,
        "seq": seq,
        "ts_event": ts_event,
        "reason": reason,
        "bids": levels(inst, bids),
        "asks": levels(inst, asks),
    }
    if depth:
        msg["depth"] = depth
    if checksum is not None:
        msg["checksum"] = checksum
    return orjson.dumps(msg)


ORDER_ACTIONS = {int(a): a.name.lower() for a in Action}
SIDES = ("bid", "ask")


def encode_l3(
    inst: Instrument,
    first: int,
    seq: int,
    ts_event: int,
    ts_recv: int,
    orders: Iterable[OrderChange],
    epoch: int = 0,
) -> bytes:
    """Order-level changes of book updates ``first``..``seq``, in the order they apply:
    ``[action, side, price, size, order id]``; ``["clear"]`` empties the book."""
    tick, lot = inst.tick, inst.lot
    out: list[list[str]] = []
    for action, side, price, size, oid in orders:
        if action == CLEAR:
            out.append(["clear"])
        else:
            out.append(
                [ORDER_ACTIONS[action], SIDES[side], tick.to_str(price), lot.to_str(size), str(oid)]
            )
    msg = _delta("l3", inst, first, seq, ts_event, ts_recv, epoch)
    msg["orders"] = out
    return orjson.dumps(msg)


def encode_l3_snapshot(
    inst: Instrument,
    orders: Iterable[RestingOrder],
    seq: int,
    ts_event: int,
    reason: str,
    epoch: int = 0,
) -> bytes:
    """Every resting order as ``[price, size, order id]``, per side best price first and
    each level in queue order."""
    tick, lot = inst.tick, inst.lot
    sides: tuple[list[list[str]], list[list[str]]] = ([], [])
    for side, price, size, oid in orders:
        sides[side].append([tick.to_str(price), lot.to_str(size), str(oid)])
    return orjson.dumps(
        {
            "type": "l3_snapshot",
            "venue": inst.venue,
            "symbol": inst.symbol,
            **_canonical(inst),
            "epoch": epoch,
            "seq": seq,
            "ts_event": ts_event,
            "reason": reason,
            "bids": sides[0],
            "asks": sides[1],
        }
    )


def encode_trade(inst: Instrument, trade: Trade) -> bytes:
    return orjson.dumps(
        {
            "type": "trade",
            "venue": trade.venue,
            "symbol": trade.symbol,
            "epoch": trade.epoch,
            "seq": trade.seq,
            "trade_id": trade.trade_id,
            "price": inst.tick.to_str(trade.price),
            "size": inst.lot.to_str(trade.size),
            "side": TRADE_SIDES[trade.side],
            "ts_event": trade.ts_event,
            "ts_recv": trade.ts_recv,
        }
    )


def encode_bbo(
    inst: Instrument,
    seq: int,
    ts_event: int,
    ts_recv: int,
    bid: tuple[int, int] | None,
    ask: tuple[int, int] | None,
    epoch: int = 0,
) -> bytes:
    tick, lot = inst.tick, inst.lot
    return orjson.dumps(
        {
            "type": "bbo",
            "venue": inst.venue,
            "symbol": inst.symbol,
            "epoch": epoch,
            "seq": seq,
            "ts_event": ts_event,
            "ts_recv": ts_recv,
            "bid": [tick.to_str(bid[0]), lot.to_str(bid[1])] if bid else None,
            "ask": [tick.to_str(ask[0]), lot.to_str(ask[1])] if ask else None,
        }
    )


def candle(inst: Instrument, bar: Bar) -> dict[str, Any]:
    tick, lot = inst.tick, inst.lot
    notional = Decimal(bar.notional) * Decimal(inst.tick_size) * Decimal(inst.lot_size)
    return {
        "start": bar.start,
        "open": tick.to_str(bar.open),
        "high": tick.to_str(bar.high),
        "low": tick.to_str(bar.low),
        "close": tick.to_str(bar.close),
        "volume": lot.to_str(bar.volume),
        "notional": format(notional.normalize(), "f") if notional else "0",
        "trades": bar.trades,
    }


def encode_candle(inst: Instrument, bar: Bar) -> bytes:
    return orjson.dumps(
        {
            "type": "candle",
            "venue": inst.venue,
            "symbol": inst.symbol,
            "interval": bar.interval_s,
            **candle(inst, bar),
        }
    )


def encode_candles(inst: Instrument, interval: int, bars: list[Bar]) -> bytes:
    return orjson.dumps(
        {
            "type": "candles",
            "venue": inst.venue,
            "symbol": inst.symbol,
            "interval": interval,
            "bars": [candle(inst, b) for b in bars],
        }
    )


def encode_status(
    venue: str, symbol: str, state: str, seq: int, reason: str, epoch: int = 0
) -> bytes:
    return orjson.dumps(
        {
            "type": "status",
            "venue": venue,
            "symbol": symbol,
            "state": state,
            "epoch": epoch,
            "seq": seq,
            "reason": reason,
        }
    )


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def error(code: str, message: str, ident: Any = None, request: Any = None) -> bytes:
    """An ``error`` message; ``request`` echoes what was refused (its op and id)."""
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ident is not None:
        out["id"] = ident
    if request is not None:
        out["request"] = request
    return orjson.dumps(out)
