"""The ``consolidated`` channel: a consolidated stream (bus.consolidate) as traders see it.

A consolidated stream reaches the node as a book stream of venue ``CONSOLIDATED`` whose
order-level book holds each venue's size at each level (one "order" per venue and level,
its id naming both) and whose ``Members`` events name the venues and their states. The
node syncs, dedupes, verifies and resumes it like any book (fanout.stream, fanout.views);
this module resolves subscriptions to it and encodes its messages: per level the summed
size and each venue's, the best bid and offer across venues with the venues at it, and
every member venue's state. docs/protocol.md ("Consolidated book") is the reference.
"""

from __future__ import annotations

from typing import Any

import orjson

from bus.consolidate import CONSOLIDATED, order_key
from fanout.protocol import ProtocolError
from fanout.stream import BookStream
from hub.events import BookUpdate, Instrument, Members

CHANNEL = "consolidated"


def stream_key(symbol: str) -> tuple[str, str]:
    """The node's key of the consolidated stream of a canonical id (any case)."""
    return (CONSOLIDATED, symbol.strip().upper())


def on_members(stream: BookStream, members: Members) -> bool:
    """Take a stream's Members event; whether the venues or their states changed. With no
    member live the stream may rightly stand still (``venue_status`` closed: not stuck)."""
    old = stream.members
    stream.members = members
    live = any(state == "live" for _v, _s, state in members.members)
    stream.venue_status = "live" if live else "closed"
    return old is None or old.members != members.members


def venue_names(stream: BookStream) -> list[str]:
    held = stream.members.members if stream.members is not None else ()
    return [venue for venue, _symbol, _state in held]


def venues(stream: BookStream) -> list[dict[str, str]]:
    """Every member venue stream with its state, in member order."""
    held = stream.members.members if stream.members is not None else ()
    return [{"venue": v, "symbol": s, "state": state} for v, s, state in held]


def _per_venue(stream: BookStream, names: list[str], side: int, price: int) -> dict[str, str]:
    """Each venue's size at one level, as decimal strings."""
    orders, inst = stream.orders, stream.instrument
    if orders is None or inst is None:
        return {}
    lot = inst.lot
    out: list[tuple[int, str, str]] = []
    for oid in orders.order_ids(side, price):
        member = order_key(oid)[0]
        order = orders.order(oid)
        if order is not None:
            name = names[member] if member < len(names) else f"#{member}"
            out.append((member, name, lot.to_str(order[2])))
    return {name: size for _m, name, size in sorted(out)}


def _levels(
    stream: BookStream, inst: Instrument, names: list[str], side: int, levels: Any
) -> list[list[Any]]:
    tick, lot = inst.tick, inst.lot
    return [
        [tick.to_str(p), lot.to_str(s), _per_venue(stream, names, side, p) if s else {}]
        for p, s in levels
    ]


def nbbo(stream: BookStream, names: list[str]) -> dict[str, Any]:
    """The best bid and ask across the venues in the book, each ``[price, summed size,
    [venues at it]]`` (null for an empty side), and whether the market is crossed."""
    inst = stream.instrument
    assert inst is not None
    out: dict[str, Any] = {}
    tops = (stream.book.best_bid(), stream.book.best_ask())
    for side, name, top in ((0, "bid", tops[0]), (1, "ask", tops[1])):
        if top is None:
            out[name] = None
        else:
            at = list(_per_venue(stream, names, side, top[0]))
            out[name] = [inst.tick.to_str(top[0]), inst.lot.to_str(top[1]), at]
    out["crossed"] = bool(tops[0] and tops[1] and tops[0][0] >= tops[1][0])
    return out


def encode_snapshot(stream: BookStream, seq: int, reason: str, checksum: int | None) -> bytes:
    inst = stream.instrument
    assert inst is not None
    names = venue_names(stream)
    msg: dict[str, Any] = {
        "type": "snapshot",
        "channel": CHANNEL,
        "venue": CONSOLIDATED,
        "symbol": stream.symbol,
        "epoch": stream.epoch,
        "seq": seq,
        "ts_event": stream.ts_event,
        "reason": reason,
        "venues": venues(stream),
        "nbbo": nbbo(stream, names),
        "bids": _levels(stream, inst, names, 0, stream.book.depth(0)),
        "asks": _levels(stream, inst, names, 1, stream.book.depth(1)),
    }
    if checksum is not None:
        msg["checksum"] = checksum
    return orjson.dumps(msg)


def encode_delta(stream: BookStream, first: int, u: BookUpdate) -> bytes:
    """Book updates ``first``..``u.seq``: each changed level's new summed size and every
    venue's size at it (absolute: replace the level; "0" and {} remove it)."""
    inst = stream.instrument
    assert inst is not None
    names = venue_names(stream)
    bids = [(p, s) for side, p, s in u.changes if side == 0]
    asks = [(p, s) for side, p, s in u.changes if side == 1]
    msg: dict[str, Any] = {
        "type": CHANNEL,
        "venue": CONSOLIDATED,
        "symbol": stream.symbol,
        "epoch": u.epoch,
        "first": first,
        "seq": u.seq,
        "ts_event": u.ts_event,
        "ts_recv": u.ts_recv,
        "bids": _levels(stream, inst, names, 0, bids),
        "asks": _levels(stream, inst, names, 1, asks),
        "nbbo": nbbo(stream, names),
        "venues": venues(stream),
    }
    if u.checksum is not None:
        msg["checksum"] = u.checksum
    return orjson.dumps(msg)


def encode_venues(stream: BookStream) -> bytes:
    """The member venues' states changed without a book change (a venue with an empty
    book, or news from a republish): the client replaces its list."""
    return orjson.dumps(
        {
            "type": "venues",
            "channel": CHANNEL,
            "venue": CONSOLIDATED,
            "symbol": stream.symbol,
            "epoch": stream.epoch,
            "seq": stream.seq,
            "venues": venues(stream),
        }
    )


def resolve(streams: dict[tuple[str, str], BookStream], symbol: str) -> BookStream:
    """The consolidated stream a subscription names by canonical id (any case); raise
    ProtocolError ``unknown_symbol`` when there is none."""
    stream = streams.get(stream_key(symbol))
    if stream is None:
        raise ProtocolError("unknown_symbol", f"no consolidated stream for {symbol!r}")
    return stream
