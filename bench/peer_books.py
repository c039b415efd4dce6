"""Which books a capture subscribed, read from its ``send`` lines, in the venue's own names:
cryptofeed subscribes its ``l2_book`` channel to the same ones (bench/peer_cryptofeed.py).
For the captures whose header does not record cryptofeed's ``config``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

Line = tuple[str, str, Any, float]


def _sent(lines: list[Line]) -> Iterator[Any]:
    for kind, _url, data, _ts in lines:
        if kind == "send":
            yield json.loads(data)


def _unique(names: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(names))


def matching(pattern: str) -> Callable[[list[Line]], list[str]]:
    """Books named by ``pattern``'s first group in the sent text (``diff_order_book_(\\w+)``)."""
    found = re.compile(pattern)

    def books(lines: list[Line]) -> list[str]:
        return _unique(
            m.group(1) for k, _u, d, _t in lines if k == "send" for m in found.finditer(d)
        )

    return books


def kraken_futures(lines: list[Line]) -> list[str]:
    """``{"event": "subscribe", "feed": "book", "product_ids": [...]}``; cryptofeed names
    products in upper case."""
    return _unique(p for m in _sent(lines) if m.get("feed") == "book" for p in m["product_ids"])


def gemini(lines: list[Line]) -> list[str]:
    return _unique(
        s for m in _sent(lines) for sub in m.get("subscriptions", []) for s in sub["symbols"]
    )


def bitfinex(lines: list[Line]) -> list[str]:
    return _unique(m["symbol"] for m in _sent(lines) if m.get("channel") == "book")


def okx(lines: list[Line]) -> list[str]:
    return _unique(
        a["instId"] for m in _sent(lines) for a in m.get("args", []) if a["channel"] == "books"
    )


def _answers(lines: list[Line], prefix: str) -> list[Any]:
    return [json.loads(d) for k, u, d, _t in lines if k == "http" and prefix in u]


def gemini_symbols(lines: list[Line]) -> Any:
    """Gemini's symbol details (cryptofeed fetches the symbol list over the network to know
    which details to read): every details answer the capture holds."""
    return _answers(lines, "/v1/symbols/details/")


def bitfinex_symbols(lines: list[Line]) -> Any:
    """The three conf lists in cryptofeed's order: exchange pairs, currencies, and the
    futures pairs (the capture fetched them as ``pair:future``, cryptofeed's route says
    ``pair:futures``)."""
    names = ("pub:list:pair:exchange", "pub:list:currency", "pub:list:pair:future")
    return [_answers(lines, name)[0] for name in names]


def bitmex_symbols(lines: list[Line]) -> Any:
    """BitMEX's active instruments with each ``expiry`` as a datetime: cryptofeed reads an
    expiry only as a number or a datetime, and BitMEX sends ISO-8601 text."""
    instruments = _answers(lines, "/api/v1/instrument/active")[-1]
    for item in instruments:
        if isinstance(item.get("expiry"), str):
            item["expiry"] = datetime.fromisoformat(item["expiry"].replace("Z", "+00:00"))
    return instruments
