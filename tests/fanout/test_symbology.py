"""Subscribing by canonical id or native symbol, over real WebSocket connections.

Five venues on one node, fed as the feeds do (Instrument event, snapshot in the
store, then updates): Kraken ``XBT/USD`` and Coinbase ``BTC-USD`` are both
``BTC-USD``; BitMEX ``XBTUSD`` and Kraken Futures ``PI_XBTUSD``/``PF_XBTUSD`` are all
``BTC-USD-PERP`` (two of them on one venue); ALT has a native ``ETH-USD`` that is not
the ``ETH-USD`` of its other stream. Each book is its own, so a snapshot shows which
stream a name resolved to.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from bus.local import MemorySnapshots
from client.market import HubClient, connect, messages, request
from client.subscribe import subscribe as hub_subscribe
from fanout.node import FanoutNode
from fanout.stream import BookStream
from fanout.symbols import Symbols
from hub import symbology as sy
from hub.events import BookSnapshot, BookUpdate, Instrument
from hub.ops import bound_port
from tests.fanout.harness import OPEN, until

LISTINGS = [
    sy.spot("KRAKEN", "XBT/USD", "XBT", "USD"),
    sy.spot("COINBASE", "BTC-USD", "BTC", "USD"),
    sy.perp("BITMEX", "XBTUSD", "XBT", "USD", settle="XBT", contract_size="1", inverse=True),
    sy.perp("KRAKEN_FUTURES", "PI_XBTUSD", "XBT", "USD", settle="XBT", inverse=True),
    sy.perp("KRAKEN_FUTURES", "PF_XBTUSD", "XBT", "USD", settle="USD"),
    sy.perp("ALT", "ETH-USD", "ETH", "USD", settle="USD"),
    sy.spot("ALT", "ETHUSD", "ETH", "USD"),
]


def book_of(i: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """Stream ``i``'s book: its own prices and sizes."""
    bids = tuple((1000 - j + 100 * i, 1 + i) for j in range(1, 4))
    asks = tuple((1000 + j + 100 * i, 2 + i) for j in range(3))
    return bids, asks


async def started() -> tuple[FanoutNode, str]:
    store = MemorySnapshots()
    node = FanoutNode(OPEN, store)
    server = await node.start()
    for i, listing in enumerate(LISTINGS):
        inst = sy.listed(Instrument(listing.venue, listing.native, "0.1", "0.001"), listing)
        await store.put_instrument(inst)
        bids, asks = book_of(i)
        await store.put(BookSnapshot(listing.venue, listing.native, 1, 0, bids, asks))
        node.on_event(inst)
        node.on_event(BookUpdate(listing.venue, listing.native, 2, 0, 0, ((0, 999 + 100 * i, 7),)))
    for _ in range(500):
        if all(s.synced for s in node.streams.values()):
            break
        await asyncio.sleep(0.01)
    assert len(node.streams) == len(LISTINGS) and all(s.synced for s in node.streams.values())
    return node, f"ws://127.0.0.1:{bound_port(server)}/ws"


async def ask(ws: Any, stream: Any, op: str, *entries: dict[str, Any]) -> dict[str, Any]:
    await request(ws, {"op": op, "channels": list(entries)})
    answer: dict[str, Any] = await until(stream, f"{op}d")
    return answer


async def test_a_canonical_on_two_venues_is_refused_without_a_venue() -> None:
    node, url = await started()
    try:
        async with connect(url) as ws:
            stream = messages(ws)
            await until(stream, "welcome")
            answer = await ask(
                ws,
                stream,
                "subscribe",
                {"channel": "book", "symbol": "BTC-USD", "depth": 5},
                {"channel": "trades", "symbol": "btc-usd-perp"},
                {"channel": "book", "symbol": "BTC-USD-PERP", "venue": "kraken_futures"},
            )
        assert answer["accepted"] == []
        assert answer["refused"] == [
            {
                "request": {"channel": "book", "symbol": "BTC-USD", "depth": 5},
                "code": "ambiguous_symbol",
                "reason": "'BTC-USD' names 2 streams: COINBASE BTC-USD, KRAKEN XBT/USD; "
                "give 'venue'",
                "choices": [
                    {"venue": "COINBASE", "symbol": "BTC-USD"},
                    {"venue": "KRAKEN", "symbol": "XBT/USD"},
                ],
            },
            {
                "request": {"channel": "trades", "symbol": "btc-usd-perp"},
                "code": "ambiguous_symbol",
                "reason": "'btc-usd-perp' names 3 streams: BITMEX XBTUSD, KRAKEN_FUTURES "
                "PF_XBTUSD, KRAKEN_FUTURES PI_XBTUSD; give 'venue'",
                "choices": [
                    {"venue": "BITMEX", "symbol": "XBTUSD"},
                    {"venue": "KRAKEN_FUTURES", "symbol": "PF_XBTUSD"},
                    {"venue": "KRAKEN_FUTURES", "symbol": "PI_XBTUSD"},
                ],
            },
            {  # two perpetuals on one venue: the venue does not settle it
                "request": {"channel": "book", "symbol": "BTC-USD-PERP", "venue": "kraken_futures"},
                "code": "ambiguous_symbol",
                "reason": "'BTC-USD-PERP' names 2 streams: KRAKEN_FUTURES PF_XBTUSD, "
                "KRAKEN_FUTURES PI_XBTUSD; give the venue's symbol",
                "choices": [
                    {"venue": "KRAKEN_FUTURES", "symbol": "PF_XBTUSD"},
                    {"venue": "KRAKEN_FUTURES", "symbol": "PI_XBTUSD"},
                ],
            },
        ]
    finally:
        await node.stop()


async def test_with_a_venue_the_canonical_id_serves_that_venues_book() -> None:
    node, url = await started()
    try:
        async with HubClient(url) as client:
            answer = await client.subscribe(
                [
                    {"channel": "book", "symbol": "btc-usd", "venue": "kraken", "checksum": True},
                    {"channel": "book", "symbol": "BTC-USD", "venue": "Coinbase"},
                    {"channel": "book", "symbol": "BTC-USD-PERP", "venue": "BITMEX"},
                ]
            )
            assert answer["refused"] == []
            assert [(a["venue"], a["symbol"]) for a in answer["accepted"]] == [
                ("KRAKEN", "XBT/USD"),
                ("COINBASE", "BTC-USD"),
                ("BITMEX", "XBTUSD"),
            ]
            snapshots: dict[tuple[str, str], dict[str, Any]] = {}
            stream = client.messages()
            while len(snapshots) < 3:
                msg = await until(stream, "snapshot")
                snapshots[msg["venue"], msg["symbol"]] = msg
            # A book delta keeps the native symbol and carries no canonical id.
            node.on_event(BookUpdate("KRAKEN", "XBT/USD", 3, 0, 0, ((1, 1001, 9),)))
            delta = await until(stream, "book")
        kraken = snapshots["KRAKEN", "XBT/USD"]
        assert (kraken["canonical"], kraken["seq"]) == ("BTC-USD", 2)
        assert kraken["bids"] == [["99.9", "0.007"], ["99.8", "0.001"], ["99.7", "0.001"]]
        assert kraken["bids"][0] != snapshots["COINBASE", "BTC-USD"]["bids"][0]
        assert snapshots["BITMEX", "XBTUSD"]["canonical"] == "BTC-USD-PERP"
        assert (delta["venue"], delta["symbol"], delta["asks"]) == (
            "KRAKEN",
            "XBT/USD",
            [["100.1", "0.009"]],
        )
        assert "canonical" not in delta
        # The mirrors are the node's books of the streams the names resolved to.
        for key in snapshots:
            book = node.streams[key].book
            mirror = client.books[key]
            assert (mirror.depth(0), mirror.depth(1)) == (book.depth(0), book.depth(1))
        assert client.books["KRAKEN", "XBT/USD"].depth(1)[0] == (1000, 2)
        assert client.books["COINBASE", "BTC-USD"].depth(1)[0] == (1100, 3)
    finally:
        await node.stop()


async def test_native_symbols_match_in_any_case_and_win_on_their_venue() -> None:
    node, url = await started()
    try:
        async with connect(url) as ws:
            stream = messages(ws)
            await until(stream, "welcome")
            answer = await ask(
                ws,
                stream,
                "subscribe",
                {"channel": "trades", "symbol": "xbt/usd"},
                {"channel": "trades", "symbol": "XbtUsd"},
                {"channel": "trades", "symbol": "pi_xbtusd", "venue": "KRAKEN_FUTURES"},
                # ALT's native ETH-USD (a perpetual) wins over its spot ETHUSD's canonical
                {"channel": "trades", "symbol": "eth-usd"},
                {"channel": "trades", "symbol": "ETH-USD-PERP", "venue": "alt"},
            )
            assert answer["refused"] == []
            assert [(a["venue"], a["symbol"]) for a in answer["accepted"]] == [
                ("KRAKEN", "XBT/USD"),
                ("BITMEX", "XBTUSD"),
                ("KRAKEN_FUTURES", "PI_XBTUSD"),
                ("ALT", "ETH-USD"),
                ("ALT", "ETH-USD"),
            ]
            gone = await ask(
                ws,
                stream,
                "unsubscribe",
                {"channel": "trades", "symbol": "BTC-USD", "venue": "KRAKEN"},
            )
            assert gone["accepted"] == [
                {"channel": "trades", "venue": "KRAKEN", "symbol": "XBT/USD"}
            ]
    finally:
        await node.stop()


async def test_an_unknown_venue_and_an_unknown_name_on_a_venue_are_told_apart() -> None:
    node, url = await started()
    try:
        async with connect(url) as ws:
            stream = messages(ws)
            await until(stream, "welcome")
            answer = await ask(
                ws,
                stream,
                "subscribe",
                {"channel": "book", "symbol": "BTC-USD", "venue": "BINANCE"},
                {"channel": "book", "symbol": "XBT/USD", "venue": "COINBASE"},
                {"channel": "book", "symbol": "DOGE-USD", "venue": "KRAKEN"},
                {"channel": "book", "symbol": "DOGE-USD"},
            )
        assert [(r["code"], r["reason"]) for r in answer["refused"]] == [
            (
                "unknown_venue",
                "no venue 'BINANCE' on this node; it carries ALT, BITMEX, COINBASE, KRAKEN, "
                "KRAKEN_FUTURES",
            ),
            ("unknown_symbol", "no stream for symbol 'XBT/USD' on COINBASE; it is on KRAKEN"),
            ("unknown_symbol", "no stream for symbol 'DOGE-USD' on KRAKEN"),
            ("unknown_symbol", "no stream for symbol 'DOGE-USD'"),
        ]
    finally:
        await node.stop()


async def test_list_shows_native_and_canonical_ids_with_contract_terms() -> None:
    node, url = await started()
    try:
        async with HubClient(url) as client:
            listed = client.streams
        terms = ("symbol", "canonical", "kind", "base", "quote", "settle", "contract_size")
        shown = {k: {t: s.get(t) for t in (*terms, "inverse")} for k, s in listed.items()}
        assert shown["KRAKEN", "XBT/USD"] == {
            "symbol": "XBT/USD",
            "canonical": "BTC-USD",
            "kind": "spot",
            "base": "BTC",
            "quote": "USD",
            "settle": None,
            "contract_size": None,
            "inverse": None,
        }
        assert shown["COINBASE", "BTC-USD"]["canonical"] == "BTC-USD"
        assert shown["BITMEX", "XBTUSD"] == {
            "symbol": "XBTUSD",
            "canonical": "BTC-USD-PERP",
            "kind": "perp",
            "base": "BTC",
            "quote": "USD",
            "settle": "BTC",
            "contract_size": "1",
            "inverse": True,
        }
        assert shown["KRAKEN_FUTURES", "PF_XBTUSD"]["settle"] == "USD"
        assert shown["KRAKEN_FUTURES", "PF_XBTUSD"]["inverse"] is None
        # Empty terms are left out, not sent as "".
        assert not {"expiry", "strike", "right"} & set(listed["BITMEX", "XBTUSD"])
    finally:
        await node.stop()


async def test_hub_subscribe_takes_a_canonical_id_and_a_venue() -> None:
    node, url = await started()
    try:
        out = io.StringIO()
        code = await hub_subscribe(url, "btc-usd", ["book"], 0, 60, None, 1, 10, out, "kraken")
        lines = out.getvalue().splitlines()
        assert code == 0
        assert lines[0] == "subscribed: book on KRAKEN XBT/USD"
        assert lines[1].startswith("snapshot") and "99.9" in lines[1] and "100" in lines[1]
        refused = io.StringIO()
        code = await hub_subscribe(url, "BTC-USD", ["book"], 0, 60, None, 1, 10, refused)
        assert code == 1
        assert refused.getvalue().startswith(
            "subscribed: nothing; refused ambiguous_symbol: 'BTC-USD' names 2 streams"
        )
    finally:
        await node.stop()


def test_a_stream_moves_to_its_new_canonical_id() -> None:
    symbols = Symbols()
    stream = BookStream("KRAKEN", "XBT/USD")
    symbols.add(stream)
    assert symbols.matches("BTC-USD") == []  # no instrument yet: native symbol only
    assert symbols.resolve(None, "xbt/usd") is stream
    inst = Instrument("KRAKEN", "XBT/USD", "0.1", "1")
    stream.instrument = sy.listed(inst, sy.spot("KRAKEN", "XBT/USD", "XBT", "USD"))
    symbols.listed(stream)
    assert symbols.resolve("KRAKEN", "btc-usd") is stream
    stream.instrument = sy.listed(inst, sy.spot("KRAKEN", "XBT/USD", "XBT", "EUR"))
    symbols.listed(stream)
    assert symbols.matches("BTC-USD") == [] and symbols.matches("BTC-EUR") == [stream]
    assert symbols.canonical.keys() == {"BTC-EUR"}
