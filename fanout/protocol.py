"""The traders' WebSocket protocol: message encoding and request parsing.

Server frames are JSON arrays of messages, so one frame can carry many
updates. Prices and sizes are exact decimal strings; times are integer ns.
Each message is encoded once per update and shared by every subscriber.
docs/protocol.md is the reference for clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from hub.events import TRADE_SIDES, BookUpdate, Instrument, Trade
from orderbook_core import L2Book

CHANNELS = ("book", "trades")


class ProtocolError(Exception):
    """A client request is malformed; ``code`` is the stable error code sent back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Subscription:
    channel: str
    venue: str
    symbol: str


def _levels(inst: Instrument, levels: list[tuple[int, int]]) -> list[list[str]]:
    tick, lot = inst.tick, inst.lot
    return [[tick.to_str(p), lot.to_str(s)] for p, s in levels]


def encode_update(inst: Instrument, update: BookUpdate) -> bytes:
    tick, lot = inst.tick, inst.lot
    bids = [[tick.to_str(p), lot.to_str(s)] for side, p, s in update.changes if side == 0]
    asks = [[tick.to_str(p), lot.to_str(s)] for side, p, s in update.changes if side == 1]
    return orjson.dumps(
        {
            "type": "book",
            "venue": update.venue,
            "symbol": update.symbol,
            "seq": update.seq,
            "ts_event": update.ts_event,
            "ts_recv": update.ts_recv,
            "bids": bids,
            "asks": asks,
        }
    )


def encode_snapshot(inst: Instrument, book: L2Book, seq: int, ts_event: int, reason: str) -> bytes:
    return orjson.dumps(
        {
            "type": "snapshot",
            "channel": "book",
            "venue": inst.venue,
            "symbol": inst.symbol,
            "seq": seq,
            "ts_event": ts_event,
            "reason": reason,
            "bids": _levels(inst, book.depth(0)),
            "asks": _levels(inst, book.depth(1)),
        }
    )


def encode_trade(inst: Instrument, trade: Trade) -> bytes:
    return orjson.dumps(
        {
            "type": "trade",
            "venue": trade.venue,
            "symbol": trade.symbol,
            "seq": trade.seq,
            "trade_id": trade.trade_id,
            "price": inst.tick.to_str(trade.price),
            "size": inst.lot.to_str(trade.size),
            "side": TRADE_SIDES[trade.side],
            "ts_event": trade.ts_event,
            "ts_recv": trade.ts_recv,
        }
    )


def encode_status(venue: str, symbol: str, state: str, seq: int, reason: str) -> bytes:
    return orjson.dumps(
        {
            "type": "status",
            "venue": venue,
            "symbol": symbol,
            "state": state,
            "seq": seq,
            "reason": reason,
        }
    )


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def parse_request(data: str | bytes) -> dict[str, Any]:
    """Parse one client message; raise ProtocolError with a stable code."""
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError("bad_json", "message is not valid JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_request", "message must be a JSON object")
    op = msg.get("op")
    if op not in ("subscribe", "unsubscribe", "ping", "list"):
        raise ProtocolError(
            "unknown_op", f"unknown op {op!r}; expected subscribe, unsubscribe, ping or list"
        )
    return msg
