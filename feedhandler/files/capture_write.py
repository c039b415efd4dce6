"""A small Gemini market-data capture (the capture format of ``capture.py``) written from a
seeded random order flow: ``hub sample``'s venue capture, replayed by the real Gemini
parser (``hub replay capture``).

Two symbols' symbol details (REST), the ``l2`` subscription, each symbol's full book (the
first ``l2_updates``, the one carrying ``trades``), then level changes (absolute sizes,
"0" deleting) and trades, each trade followed by the change it made to the resting level.
The books never cross. Lines carry fixed times, so a seed always writes the same bytes.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import zstandard

from hub.decimals import Unit

SYMBOLS = {"BTCUSD": ("BTC", "USD", 30_000_00), "ETHUSD": ("ETH", "USD", 2_000_00)}
"""Symbol -> (base, quote, starting mid in cents)."""
LOT = 10**6
"""Quantities in 1e-6 (Gemini's details say ``tick_size`` 1E-6 here); prices in cents."""
START_NS = 1_577_716_200_000_000_000
"""2019-12-30 14:30 UTC: 09:30 in New York on the ITCH sample's day, so the two overlap."""
CONN, ADDR = "GEMINI.ws.1.0", "wss://api.gemini.com/v2/marketdata/"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _qty(units: int) -> str:
    whole, frac = divmod(units, LOT)
    return f"{whole}.{frac:06d}".rstrip("0").rstrip(".")


Books = dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]


def write_gemini_capture(path: Path, seed: int, frames: int = 1200) -> Books:
    """Write the capture (zstd-compressed when the name ends in .zst); the books it leaves,
    per symbol bids best first and asks best first as (price, quantity) strings with the
    units' decimals (as ``hub replay capture`` prints them)."""
    rng = random.Random(seed)
    ts = START_NS
    lines: list[dict[str, Any]] = [{"t": "header", "format": 2, "exchange": "GEMINI"}]

    def line(kind: str, **fields: Any) -> None:
        nonlocal ts
        ts += rng.randrange(1_000_000, 20_000_000)
        lines.append({"t": kind, "conn": CONN, "ts": ts / 1e9, **fields})

    for symbol, (base, quote, _mid) in SYMBOLS.items():
        details = (  # JSON numbers as Gemini sends them (the parser reads their exact text)
            f'{{"symbol":"{symbol}","base_currency":"{base}","quote_currency":"{quote}",'
            '"tick_size":1E-6,"quote_increment":0.01,"status":"open"}'
        )
        url = f"https://api.gemini.com/v1/symbols/details/{symbol.lower()}"
        line("http", url=url, data=details)
    line("connect", addr=ADDR)
    subscribe = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": list(SYMBOLS)}]}
    line("send", addr=ADDR, data=orjson.dumps(subscribe).decode())
    books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    for symbol, (_b, _q, mid) in SYMBOLS.items():
        bids = {mid - 100 * i: rng.randrange(1, 50) * LOT // 10 for i in range(1, 21)}
        asks = {mid + 100 * i: rng.randrange(1, 50) * LOT // 10 for i in range(1, 21)}
        books[symbol] = (bids, asks)
        changes = [["buy", _money(p), _qty(q)] for p, q in sorted(bids.items(), reverse=True)]
        changes += [["sell", _money(p), _qty(q)] for p, q in sorted(asks.items())]
        full = {"type": "l2_updates", "symbol": symbol, "changes": changes, "trades": []}
        line("recv", data=orjson.dumps(full).decode())
    event_id = 1000
    mids = {symbol: mid for symbol, (_b, _q, mid) in SYMBOLS.items()}
    for _ in range(frames - len(SYMBOLS)):
        symbol = rng.choice(list(SYMBOLS))
        bids, asks = books[symbol]
        if rng.random() < 0.15 and bids and asks:  # a taker hits the best level
            buy = rng.random() < 0.5
            level = asks if buy else bids
            price = min(level) if buy else max(level)
            qty = rng.randrange(1, level[price] + 1)
            event_id += 1
            trade = {
                "type": "trade",
                "symbol": symbol,
                "event_id": event_id,
                "timestamp": (ts + 1_000_000) // 1_000_000,
                "price": _money(price),
                "quantity": _qty(qty),
                "side": "buy" if buy else "sell",
            }
            line("recv", data=orjson.dumps(trade).decode())
            level[price] -= qty
            left = level[price]
            if not left:
                del level[price]
            side = "sell" if buy else "buy"
            change = [[side, _money(price), _qty(left)]]
            update = {"type": "l2_updates", "symbol": symbol, "changes": change}
            line("recv", data=orjson.dumps(update).decode())
            continue
        bid_side = rng.random() < 0.5
        level = bids if bid_side else asks
        if len(level) > 5 and rng.random() < 0.35:  # a level goes
            price = rng.choice(list(level))
            del level[price]
            qty = 0
        else:  # a level near the mid is set (the mid wanders a cent grid of $1)
            mids[symbol] += 100 * rng.choice((-1, 0, 0, 1)) if rng.random() < 0.05 else 0
            k = 1 + int(rng.expovariate(1 / 4))
            price = mids[symbol] - 100 * k if bid_side else mids[symbol] + 100 * k
            if (bid_side and asks and price >= min(asks)) or (
                not bid_side and bids and price <= max(bids)
            ):
                continue  # it would cross the other side
            qty = rng.randrange(1, 80) * LOT // 10
            level[price] = qty
        update = {
            "type": "l2_updates",
            "symbol": symbol,
            "changes": [["buy" if bid_side else "sell", _money(price), _qty(qty)]],
        }
        line("recv", data=orjson.dumps(update).decode())
    data = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor(level=9).compress(data)
    path.write_bytes(data)
    tick, lot = Unit("0.01"), Unit("0.000001")  # as the hub writes them: every decimal
    return {
        symbol: (
            [(tick.to_str(p), lot.to_str(q)) for p, q in sorted(bids.items(), reverse=True)],
            [(tick.to_str(p), lot.to_str(q)) for p, q in sorted(asks.items())],
        )
        for symbol, (bids, asks) in books.items()
    }
