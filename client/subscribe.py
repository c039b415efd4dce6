"""``hub subscribe``: a live view of one symbol through the public protocol.

One line per message: book lines show the top of the mirror the client
keeps (and that its checksums verified), l3 lines the best level of each side
with its queue length, trades, bbo, candles and status as they come. It
resumes by itself after a lost connection.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

from websockets.exceptions import InvalidHandshake, InvalidURI

from client.market import (
    BookMirror,
    ChecksumMismatch,
    HubClient,
    OrderBookMismatch,
    OrderMirror,
    SequenceGap,
)
from client.replay import ReplayClient, ReplayError


def describe(
    msg: dict[str, Any], book: BookMirror | None, orders: OrderMirror | None = None
) -> str | None:
    """One line for a message, or None for messages not worth a line."""
    kind = msg["type"]
    if kind in ("l3_snapshot", "l3") and orders is not None:
        label = "l3 snapshot" if kind == "l3_snapshot" else f"l3 {msg['first']}..{msg['seq']}"
        best = []
        for side in (0, 1):
            prices = sorted(orders.queues[side], reverse=side == 0)
            if prices:
                queue = orders.queue(side, prices[0])
                best.append(f"{orders.tick.to_str(prices[0])} x{len(queue)} orders")
            else:
                best.append("-")
        changes = "" if kind == "l3_snapshot" else f"  {len(msg['orders'])} changes"
        return (
            f"{label:<22} seq {orders.seq}  {best[0]}  |  {best[1]}"
            f"  orders {len(orders.orders)}{changes}"
        )
    if kind in ("snapshot", "book") and book is not None:
        bid, ask = book.best(0), book.best(1)
        top = f"{bid[1]} @ {bid[0]}" if bid else "-"
        top += f"  |  {ask[1]} @ {ask[0]}" if ask else "  |  -"
        verified = " checksum ok" if "checksum" in msg else ""
        label = "snapshot" if kind == "snapshot" else f"book {msg['first']}..{msg['seq']}"
        return (
            f"{label:<22} seq {book.seq}  {top}  levels {len(book.bids)}/{len(book.asks)}{verified}"
        )
    if kind == "trade":
        return f"trade #{msg['seq']:<14} {msg['side']:<4} {msg['size']} @ {msg['price']}"
    if kind == "bbo":
        b, a = msg["bid"] or ["-", "-"], msg["ask"] or ["-", "-"]
        return f"bbo  seq {msg['seq']:<12} {b[1]} @ {b[0]}  |  {a[1]} @ {a[0]}"
    if kind == "candle":
        start = time.strftime("%H:%M:%S", time.gmtime(msg["start"] / 1e9))
        return (
            f"candle {msg['interval']}s {start}"
            f"  O {msg['open']} H {msg['high']} L {msg['low']} C {msg['close']}"
            f"  V {msg['volume']} n {msg['trades']}"
        )
    if kind == "candles":
        return f"candles {msg['interval']}s: {len(msg['bars'])} recent bars"
    if kind == "status":
        return f"status {msg['state']} ({msg['reason']}) at seq {msg['seq']}"
    if kind in ("subscribed", "resumed"):
        refused = "; ".join(f"{r['code']}: {r['reason']}" for r in msg["refused"])
        accepted = ", ".join(
            a["channel"] + (f" ({a['resume']})" if "resume" in a else "") for a in msg["accepted"]
        )
        # The stream the name resolved to (a canonical id names a venue's own symbol).
        streams = dict.fromkeys(f"{a['venue']} {a['symbol']}" for a in msg["accepted"])
        on = f" on {', '.join(streams)}" if streams else ""
        return f"{kind}: {accepted or 'nothing'}{on}" + (f"; refused {refused}" if refused else "")
    if kind == "error":
        return f"error {msg['code']}: {msg['message']}"
    if kind == "replay" and msg["state"] == "playing":
        span = f"{msg['from'] or 'start'} .. {msg['to'] or 'end'}"
        return f"replay playing: {', '.join(msg['sources'])} ({span}, speed {msg['speed']})"
    if kind == "replay":
        return f"replay ended at {msg['clock']} after {msg['events']} events"
    if kind == "instrument":
        named = f" ({msg['canonical']})" if msg.get("canonical") else ""
        return (
            f"instrument {msg['venue']} {msg['symbol']}{named}"
            f" tick {msg['tick_size']} lot {msg['lot_size']}"
        )
    return None


async def subscribe(
    url: str,
    symbol: str,
    channels: list[str],
    depth: int,
    interval: int,
    token: str | None,
    count: int,
    seconds: float,
    out: TextIO = sys.stdout,
    venue: str | None = None,
) -> int:
    """Print the live view of ``symbol`` (the venue's own or the canonical id, any case;
    ``venue`` picks one where several carry it); stop after ``count`` lines or
    ``seconds`` (0: never)."""
    requested: list[dict[str, Any]] = []
    for channel in channels:
        item: dict[str, Any] = {"channel": channel, "symbol": symbol}
        if venue:
            item["venue"] = venue
        if channel == "book":
            item["checksum"] = True
            if depth:
                item["depth"] = depth
        if channel == "candles":
            item["interval"] = interval
        requested.append(item)
    try:
        async with HubClient(url, token=token) as client:
            answer = await client.subscribe(requested)
            print(describe(answer, None), file=out, flush=True)
            if not answer["accepted"]:
                return 1
            lines = 0
            deadline = time.monotonic() + seconds if seconds else None
            stream = client.messages()
            while deadline is None or time.monotonic() < deadline:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    msg = await asyncio.wait_for(anext(stream), left)
                except (TimeoutError, StopAsyncIteration):
                    break
                key = (msg.get("venue", ""), msg.get("symbol", ""))
                line = describe(msg, client.books.get(key), client.order_books.get(key))
                if line is None:
                    continue
                print(line, file=out, flush=True)
                lines += 1
                if count and lines >= count:
                    break
            return 0
    except (SequenceGap, ChecksumMismatch, OrderBookMismatch) as exc:
        print(f"hub subscribe: the book is wrong: {exc}", file=sys.stderr)
        return 4
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        print(f"hub subscribe: cannot connect to {url}: {exc}", file=sys.stderr)
        return 3


async def watch_replay(
    url: str,
    sources: list[str],
    symbol: str,
    channels: list[str],
    start: str | None,
    end: str | None,
    speed: str,
    token: str | None,
    count: int,
    out: TextIO = sys.stdout,
) -> int:
    """``hub subscribe SYMBOL --replay SOURCES``: the same lines for a replay of recorded
    sources from the node's /replay (``SYMBOL`` ``*``: every stream), each book checked."""
    symbols = [] if symbol == "*" else [symbol]
    asked = [c for c in channels if c in ("book", "trades", "status")] or ["book", "trades"]
    try:
        async with ReplayClient(url, sources, start, end, speed, asked, symbols, token) as replay:
            lines = 0
            async for msg in replay.messages():
                key = (msg.get("venue", ""), msg.get("symbol", ""))
                line = describe(msg, replay.books.get(key))
                if line is None:
                    continue
                print(line, file=out, flush=True)
                lines += 1
                if count and lines >= count:
                    return 0
            return 0 if replay.ended is not None else 5
    except ReplayError as exc:
        print(f"hub subscribe: the node refused the replay: {exc}", file=sys.stderr)
        return 2
    except (SequenceGap, ChecksumMismatch) as exc:
        print(f"hub subscribe: the book is wrong: {exc}", file=sys.stderr)
        return 4
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        print(f"hub subscribe: cannot connect to {url}: {exc}", file=sys.stderr)
        return 3
