"""The feed benchmark's peer: cryptofeed's own exchange handlers fed the recorded frames.

Played back the way cryptofeed's sample-data playback does
(``cryptofeed.raw_data_collection.playback``): the exchange's symbol data comes
from the capture's REST lines instead of the network, its REST book snapshots
from the capture too (its HTTP connection's ``read``), ``subscribe`` runs
against a stand-in connection, and every received frame goes through
``await feed.message_handler(text, conn, ts)`` (text, or a binary frame's
bytes: Huobi's gzip). The subscription is the one the capture's header records
(cryptofeed wrote these captures), or the books its ``send`` lines subscribed
(bench/peer_books.py), or for the Kraken fixtures the one book they hold;
callbacks only count. Where cryptofeed fetches something over the network while
a feed is built (KuCoin's bullet token) a stand-in answers; where its symbol
routes differ from the capture's (Bitfinex, Gemini's details) or it cannot read
the venue's list (BitMEX's ISO expiries) the symbol data is built from the
capture's REST lines. Kraken books are kept at the subscribed depth 10 and OKX
books checked, with cryptofeed's checksum validation on, as ours verify every
checksum.

cryptofeed is an optional benchmark dependency (the ``bench`` extra):
``available()`` says whether it can be imported and why not.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlparse

from bench import peer_books as pb

Book = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]
"""(bids, asks): price -> size, every level."""
Line = tuple[str, str, Any, float]
"""(kind, url, data, ts seconds) of a capture line: ``recv``, ``http`` or ``send``; data is
text, or the bytes of a binary frame (Huobi's gzip)."""


@dataclass(frozen=True)
class Peer:
    """How one capture is played to cryptofeed."""

    exchange: str
    """cryptofeed's exchange id (``COINBASE``)."""
    subscription: dict[str, list[str]] = field(default_factory=dict)
    """Channel -> symbols, cryptofeed's names; empty: the capture header's ``config``."""
    options: dict[str, Any] = field(default_factory=dict)
    symbol_data: Callable[[list[Line]], Any] | None = None
    """The exchange's symbol data when the capture has no REST line of it."""
    exchange_names: bool = False
    """Our books are named as the venue names the symbol (``XBT/USD``, ``BTCUSD_PERP``),
    not as cryptofeed does (``BTC-USD``, ``BTC-USD-PERP``)."""
    books: Callable[[list[Line]], list[str]] | None = None
    """The venue's names of the books the capture subscribed (its ``send`` lines), when its
    header has no ``config``: cryptofeed subscribes its ``l2_book`` to them."""
    fetched: dict[str, Any] = field(default_factory=dict)
    """What the feed fetches over the network while it is built (URL path -> JSON answer),
    answered by a stand-in for cryptofeed's blocking HTTP connection."""
    name: Callable[[str], str] = str
    """Our name of a book from the venue's (Kraken Futures: ``PI_ETHUSD`` for ``pi_ethusd``)."""
    corrected: Callable[[str, Book], Book] | None = None
    """cryptofeed's book (our name) brought to what the venue meant, for a known fault of its
    (``correction`` says which); the corrected book must then equal ours."""
    correction: str = ""
    wrong_asks: str = ""
    """Why cryptofeed's asks are known to miss levels (then each of its ask levels must
    equal ours, instead of the whole side)."""


def _kraken_pairs(lines: list[Line]) -> Any:
    """AssetPairs as Kraken would answer for the pairs the frames name (v1 frames end with
    the pair); the fixtures have no REST line."""
    pairs: set[str] = set()
    for kind, _url, data, _ts in lines:
        if kind == "recv" and data.startswith("["):
            msg = json.loads(data)
            if isinstance(msg, list) and isinstance(msg[-1], str):
                pairs.add(msg[-1])
    return {"error": [], "result": {p.replace("/", ""): {"wsname": p} for p in sorted(pairs)}}


def _huobi_sizes(symbol: str, book: Book) -> Book:
    """Huobi spot's depth sizes are float sums (``3307.9982700421942``): ours are rounded half
    up to 8 decimals (feedhandler.venues.huobi), cryptofeed keeps the text; rounded alike."""
    grid = Decimal("1e-8")
    return tuple(  # type: ignore[return-value]
        {p: s.quantize(grid, ROUND_HALF_UP) for p, s in side.items()} for side in book
    )


def _phemex_spot_sizes(symbol: str, book: Book) -> Book:
    """cryptofeed divides a Phemex spot price by the price scale but leaves the quantity a
    scaled integer (``573489000000`` for 5734.89; spot ``valueScale`` is 8)."""
    if not symbol.startswith("s"):
        return book
    return tuple(  # type: ignore[return-value]
        {p: s.scaleb(-8) for p, s in side.items()} for side in book
    )


_KUCOIN_BULLET = {
    "data": {
        "token": "replay",
        "instanceServers": [
            {"endpoint": "wss://ws-api.kucoin.com/endpoint", "pingInterval": 18000}
        ],
    }
}
"""KuCoin's public bullet answer (the token a connection needs), which cryptofeed fetches
when its feed is built: a stand-in, since the replay connects nowhere."""


PEERS = {
    # cryptofeed signs its Advanced Trade subscriptions (once, at subscribe): any key will do
    "coinbase-advanced-trade": Peer(
        "COINBASE",
        options={"config": {"coinbase": {"key_id": "replay", "key_secret": "replay"}}},
        wrong_asks="takes a snapshot's asks as side 'ask', the feed says 'offer': it loses"
        " every snapshot ask, so its asks are only the levels later updates set",
    ),
    "binance-spot": Peer("BINANCE"),
    "binance-delivery": Peer("BINANCE_DELIVERY", exchange_names=True),
    "gateio-spot": Peer("GATEIO", exchange_names=True),
    "bitget-spot": Peer("BITGET", exchange_names=True),
    "kraken-v1-book10": Peer(
        "KRAKEN",
        {"l2_book": ["BTC-USD"]},
        {"max_depth": 10, "checksum_validation": True},
        _kraken_pairs,
        exchange_names=True,
    ),
    "cryptocom-spot": Peer("CRYPTO.COM", exchange_names=True),
    "huobi-spot": Peer(
        "HUOBI",
        books=pb.matching(r'"sub":"market\.(\w+)\.depth'),
        exchange_names=True,
        corrected=_huobi_sizes,
        correction="keeps the float-sum sizes as sent, ours rounds them to 8 decimals:"
        " its sizes rounded alike",
    ),
    "huobi-coin-swap": Peer(
        "HUOBI_SWAP", books=pb.matching(r'"sub":"market\.([\w-]+)\.depth'), exchange_names=True
    ),
    "bitstamp-spot": Peer(
        "BITSTAMP", books=pb.matching(r"diff_order_book_(\w+)"), exchange_names=True
    ),
    "phemex": Peer(
        "PHEMEX",
        books=pb.matching(r'"orderbook\.subscribe","params":\["(\w+)"'),
        exchange_names=True,
        corrected=_phemex_spot_sizes,
        correction="leaves a spot quantity a scaled integer (x 1e8): divided here",
    ),
    "gemini-spot": Peer(
        "GEMINI", symbol_data=pb.gemini_symbols, books=pb.gemini, exchange_names=True
    ),
    "bitfinex-spot": Peer(
        "BITFINEX", symbol_data=pb.bitfinex_symbols, books=pb.bitfinex, exchange_names=True
    ),
    # cryptofeed signs its KuCoin snapshot requests: any key will do
    "kucoin-spot": Peer(
        "KUCOIN",
        options={"config": {"kucoin": {"key_id": "r", "key_secret": "r", "key_passphrase": "r"}}},
        fetched={"/api/v1/bullet-public": _KUCOIN_BULLET},
    ),  # its books are kept by KuCoin's names already
    "okx-spot-futures-swap": Peer(
        "OKX", books=pb.okx, options={"checksum_validation": True}, exchange_names=True
    ),
    # cryptofeed 2.4 counts Deribit's public books as an authenticated channel: any key will do
    "deribit-options": Peer(
        "DERIBIT",
        options={"config": {"deribit": {"key_id": "replay", "key_secret": "replay"}}},
        books=pb.matching(r"book\.([\w-]+)\.raw"),
        exchange_names=True,
    ),
    "bitmex": Peer(
        "BITMEX",
        symbol_data=pb.bitmex_symbols,
        books=pb.matching(r"orderBookL2:(\w+)"),
        exchange_names=True,
    ),
    "kraken-futures": Peer(
        "KRAKEN_FUTURES", books=pb.kraken_futures, exchange_names=True, name=str.upper
    ),
}
"""Captures (by file name prefix) whose venue and feed cryptofeed 2.4 handles and plays
back here."""

NO_PEER = {
    "bybit-usdt-perp": "cryptofeed reads Bybit v5 only, not this legacy v2 feed",
    "coinbase-exchange-level2": "cryptofeed reads Coinbase Advanced Trade only",
    "kraken-v2-book10": "cryptofeed reads Kraken WS v1 only",
}
"""Why the other captures have no cryptofeed figure beside ours (shown in the table)."""


def available() -> str:
    """Empty if cryptofeed can be imported, else why not."""
    try:
        import cryptofeed  # noqa: F401
    except ImportError as exc:
        return f"cryptofeed not installed ({exc}); pip install -e .[bench]"
    return ""


class _Conn:
    """The connection ``subscribe`` writes to, and the HTTP connection snapshots are read
    from: the capture's REST answers, by URL (Binance: by its ``symbol``)."""

    conn_type = "wss"
    uuid = "playback"

    def __init__(self, subscription: dict[str, list[str]], lines: list[Line]) -> None:
        self.subscription = subscription
        self.bodies: dict[str, list[str]] = {}
        for kind, url, data, _ts in lines:
            if kind == "http":
                self.bodies.setdefault(_key(url), []).append(data)

    async def write(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def read(self, url: str, **kwargs: Any) -> str:
        answers = self.bodies.get(_key(url), [])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def close(self) -> None:
        return None


class _Fetched:
    """cryptofeed's blocking HTTP connection while a feed is built: the peer's ``fetched``
    answers, and no other (a fetch of anything else fails)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def read(self, address: str, **kwargs: Any) -> Any:
        return self.answers[urlparse(address).path]

    write = read


def _key(url: str) -> str:
    parsed = urlparse(url)
    symbol = parse_qs(parsed.query).get("symbol", [""])[0]
    return f"{parsed.path}?{symbol}"


class Playback:
    """One cryptofeed feed, built from a capture's symbol data, ready to be fed its frames."""

    def __init__(self, peer: Peer, header: dict[str, Any], lines: list[Line]) -> None:
        from cryptofeed.defines import L2_BOOK
        from cryptofeed.exchanges import EXCHANGE_MAP
        from cryptofeed.symbols import Symbols

        # its warnings for channels it does not read (Coinbase tickers, heartbeats) are not
        # printed, which would cost it time
        logging.getLogger("feedhandler").setLevel(logging.ERROR)
        cls = EXCHANGE_MAP[peer.exchange]
        data = peer.symbol_data(lines) if peer.symbol_data is not None else _symbol_data(cls, lines)
        Symbols.set(cls.id, *cls._parse_symbol_data(data))
        subscription = peer.subscription or {
            c: s for c, s in header.get("config", {}).items() if c in cls.websocket_channels
        }
        if peer.books is not None:
            std = {e: n for n, e in Symbols.get(cls.id)[0].items()}
            subscription = {L2_BOOK: [std[e] for e in peer.books(lines)]}
        self.counts: dict[str, int] = {}
        callbacks = {c: self._counter(c) for c in subscription}
        fetching = cls.http_sync
        cls.http_sync = _Fetched(peer.fetched)
        try:
            self.feed = cls(
                subscription=subscription,
                callbacks=callbacks,
                candle_closed_only=False,
                **peer.options,
            )
        finally:
            cls.http_sync = fetching
        exchange_sub = {
            cls.std_channel_to_exchange(c): [self.feed.std_symbol_to_exchange_symbol(s) for s in ss]
            for c, ss in subscription.items()
        }
        self.conn = _Conn(exchange_sub, lines)
        self.feed.http_conn = self.conn
        self.peer = peer
        self.l2 = L2_BOOK

    def _counter(self, channel: str) -> Callable[[Any, float], Any]:
        async def count(obj: Any, receipt_timestamp: float) -> None:
            self.counts[channel] = self.counts.get(channel, 0) + 1

        return count

    async def play(self, lines: list[Line]) -> None:
        await self.feed.subscribe(self.conn)
        handler = self.feed.message_handler
        for kind, _url, data, ts in lines:
            if kind == "recv":
                await handler(data, self.conn, ts)

    def books(self) -> dict[str, Book]:
        """Each book cryptofeed ended with, by our symbol name, every level."""
        out = {}
        for symbol, book in self.feed._l2_book.items():
            levels = book.book.to_dict()
            if self.peer.exchange_names:
                symbol = self.peer.name(self.feed.std_symbol_to_exchange_symbol(symbol))
            out[symbol] = (dict(levels["bid"]), dict(levels["ask"]))
            if self.peer.corrected is not None:
                out[symbol] = self.peer.corrected(symbol, out[symbol])
        return out


def _symbol_data(cls: Any, lines: list[Line]) -> Any:
    """What cryptofeed's ``symbol_mapping`` would read from the venue: each of its symbol
    endpoints' answer, here the capture's REST line of that path whose query holds the
    route's (OKX's ``?instType=SWAP``; Deribit's capture adds ``&expired=false``): one
    answer, or a list."""
    answers = [(urlparse(u), d) for k, u, d, _t in lines if k == "http"]
    data = []
    for ep in cls.rest_endpoints:
        found = cls._symbol_endpoint_prepare(ep)
        for address in found if isinstance(found, list) else [found]:
            route = urlparse(address)
            query = set(parse_qsl(route.query))
            same = [
                d for u, d in answers if u.path == route.path and query <= set(parse_qsl(u.query))
            ]
            if not same:  # the capture's route to the same list (Coinbase's public
                last = route.path.rsplit("/", 1)[-1]  # market/products)
                same = [d for u, d in answers if u.path.rsplit("/", 1)[-1] == last]
            data.append(json.loads(same[-1]))
    return data if len(data) > 1 else data[0]


def play(peer: Peer, header: dict[str, Any], lines: list[Line]) -> Playback:
    """Build a feed and feed it every frame of ``lines``; the feed, with its books."""
    playback = Playback(peer, header, lines)
    asyncio.run(playback.play(lines))
    return playback
