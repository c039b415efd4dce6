"""Which books a capture subscribed, read from its ``send`` lines, in the venue's own names:
cryptofeed subscribes its ``l2_book`` channel to the same ones (bench/peer_cryptofeed.py).
For the captures whose header does not record cryptofeed's ``config``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
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
