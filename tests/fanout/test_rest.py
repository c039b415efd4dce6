"""The node's REST API over real HTTP: instruments, books, trades, candles and tickers as
exact decimals, errors that name what does not match, and the WebSocket's keys, channels
and rate limits."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import orjson

from fanout.protocol import candle
from fanout.stream import BarBuilder
from hub.events import Bar
from tests.conftest import ROOT
from tests.fanout.harness import INST, OPEN, top
from tests.fanout.restclient import EPOCH, KRAKEN_TS, get, rest_node

KEY_A = "key-a-0123456789abcdef0123456789abcdef"
MINUTE = 60 * 10**9
T0 = 1_795_000_020 * 10**9  # a whole minute


def cents(levels: list[tuple[int, int]]) -> list[list[str]]:
    return [[f"{p / 100:.2f}", str(s)] for p, s in levels]


async def test_instruments_name_native_and_canonical_symbols_units_and_status() -> None:
    node, _market, port = await rest_node()
    try:
        got = await get(port, "/v1/instruments")
        assert got.status == 200 and got.headers["content-type"] == "application/json"
        kraken, sim = got.json()["instruments"]
        assert kraken == {
            "venue": "KRAKEN",
            "symbol": "XBT/USD",
            "canonical": "BTC-USD",
            "listing": {
                "kind": "spot",
                "base": "BTC",
                "quote": "USD",
                "settle": "",
                "expiry": "",
                "strike": "",
                "right": "",
                "contract_size": "",
                "inverse": False,
            },
            "tick_size": "0.1",
            "lot_size": "0.00000001",
            "status": "live",
            "synced": True,
            "epoch": EPOCH,
            "seq": 8,
            "channels": ["book", "trades", "bbo", "candles", "status", "ticker"],
        }
        assert (sim["venue"], sim["symbol"], sim["canonical"], sim["listing"]) == (
            "SIM",
            "X",
            None,
            None,
        )
        assert (sim["tick_size"], sim["lot_size"], sim["seq"]) == ("0.01", "1", 2)
        only = (await get(port, "/v1/instruments?venue=SIM")).json()["instruments"]
        assert [i["symbol"] for i in only] == ["X"]
    finally:
        await node.stop()


async def test_book_snapshots_are_the_nodes_books_at_their_seq() -> None:
    node, market, port = await rest_node()
    try:
        market.step(200)
        stream = node.streams["SIM", "X"]
        book = (await get(port, "/v1/book/SIM/X?depth=5")).json()
        assert book["bids"] == cents(top(node, 0, 5)) and book["asks"] == cents(top(node, 1, 5))
        assert (book["seq"], book["epoch"], book["depth"]) == (stream.seq, 0, 5)
        assert book["checksum"] == stream.book.checksum(5) and book["checksum_levels"] == 5
        full = (await get(port, "/v1/book/SIM/X")).json()
        assert full["bids"] == cents(top(node, 0)) and full["depth"] == 0
        assert full["checksum"] == stream.book.checksum(10)
        want = {
            "venue": "KRAKEN",
            "symbol": "XBT/USD",
            "canonical": "BTC-USD",
            "epoch": EPOCH,
            "seq": 8,
            "ts_event": KRAKEN_TS,
            "depth": 0,
            "bids": [["65000.0", "0.00000012"], ["64999.9", "0.00000003"]],
            "asks": [["65000.1", "0.00000040"], ["65000.2", "0.00000001"]],
        }
        # A symbol with '/': percent-encoded, as it is, or by its canonical id.
        for path in ("XBT%2FUSD", "XBT%2fUSD", "XBT/USD", "BTC-USD", "xbt%2Fusd"):
            got = (await get(port, f"/v1/book/KRAKEN/{path}")).json()
            assert {k: got[k] for k in want} == want, path
    finally:
        await node.stop()


async def test_errors_name_the_real_mismatch_and_the_bad_parameter() -> None:
    node, _market, port = await rest_node()
    try:
        cases = {
            "/v1/book/NOPE/X": (
                404,
                "unknown_venue",
                "no venue 'NOPE' on this node; it carries KRAKEN, SIM",
            ),
            "/v1/book/KRAKEN/X": (
                404,
                "unknown_symbol",
                "no stream for symbol 'X' on KRAKEN; it is on SIM",
            ),
            "/v1/ticker/SIM/BTC-USD": (
                404,
                "unknown_symbol",
                "no stream for symbol 'BTC-USD' on SIM; it is on KRAKEN",
            ),
            "/v1/book/SIM/X?depth=0": (
                400,
                "bad_request",
                "depth must be an integer 1-1000, got '0'",
            ),
            "/v1/trades/SIM/X?limit=51": (
                400,
                "bad_request",
                "limit must be an integer 1-50, got '51'",
            ),
            "/v1/book/SIM/X?levels=5": (
                400,
                "bad_request",
                "unknown parameter 'levels' (expected: depth)",
            ),
            "/v1/book/SIM/X?depth=1&depth=2": (
                400,
                "bad_request",
                "parameter 'depth' given more than once",
            ),
            "/v1/candles/SIM/X?interval=7": (
                400,
                "bad_request",
                "interval must be one of 1, 60, 300, 3600, 86400 (seconds)",
            ),
            "/v1/candles/SIM/X?start=yesterday": (
                400,
                "bad_request",
                "start must be ns since the Unix epoch or an ISO 8601 time, got 'yesterday'",
            ),
            "/v1/candles/SIM/X?start=20&end=10": (
                400,
                "bad_request",
                "end (10) must be after start (20)",
            ),
            "/v1/book/SIM": (404, "not_found", "expected /v1/book/{venue}/{symbol}"),
        }
        for path, (status, code, message) in cases.items():
            got = await get(port, path)
            assert (got.status, got.json()) == (status, {"code": code, "message": message}), path
        nowhere = await get(port, "/v1/orders")
        assert nowhere.status == 404 and nowhere.json()["code"] == "not_found"
        assert "/v1/book/{venue}/{symbol}" in nowhere.json()["message"]
        assert (await get(port, "/nope")).status == 404  # outside /v1: the plain 404
    finally:
        await node.stop()


async def test_recent_trades_oldest_first_and_the_ticker_of_the_day() -> None:
    node, market, port = await rest_node()
    try:
        empty = (await get(port, "/v1/ticker/SIM/X")).json()
        assert (empty["trades"], empty["last"], empty["volume"], empty["open"]) == (
            0,
            None,
            "0",
            None,
        )
        prices = [10_000, 10_050, 9_900, 10_020]
        for i, price in enumerate(prices):
            market.trade(price, i + 1, T0 + i * MINUTE * 60)  # one an hour
        got = (await get(port, "/v1/trades/SIM/X?limit=2")).json()
        assert got["epoch"] == 0 and got["canonical"] is None
        assert [(t["seq"], t["price"], t["size"], t["side"]) for t in got["trades"]] == [
            (3, "99.00", "3", "buy"),
            (4, "100.20", "4", "buy"),
        ]
        assert len((await get(port, "/v1/trades/SIM/X")).json()["trades"]) == 4
        ticker = (await get(port, "/v1/ticker/SIM/X")).json()
        assert {k: ticker[k] for k in ("open", "high", "low", "last", "change", "change_pct")} == {
            "open": "100.00",
            "high": "100.50",
            "low": "99.00",
            "last": "100.20",
            "change": "0.20",
            "change_pct": "0.20",
        }
        assert (ticker["volume"], ticker["trades"], ticker["seq"]) == ("10", 4, 4)
        assert ticker["notional"] == "998.8"  # 100 + 201 + 297 + 400.8
        assert ticker["ts_event"] == T0 + 3 * 3600 * 10**9
        assert ticker["window_start"] == T0 + 3 * 3600 * 10**9 - 1439 * MINUTE
        # A day later the first three hours have left the window.
        market.trade(10_100, 1, T0 + 26 * 3600 * 10**9)
        ticker = (await get(port, "/v1/ticker/SIM/X")).json()
        assert (ticker["open"], ticker["low"], ticker["high"], ticker["trades"]) == (
            "100.20",
            "100.20",
            "101.00",
            2,
        )
    finally:
        await node.stop()


async def test_candles_from_memory_over_a_range() -> None:
    node, market, port = await rest_node(bars_from_trades=True)
    try:
        builder = BarBuilder((60,))
        bars: dict[int, Bar] = {}
        for i in range(40):
            ts = T0 + i * 20 * 10**9  # three a minute
            market.trade(10_000 + i % 7, 1 + i % 3, ts)
            for bar in builder.add("SIM", "X", 10_000 + i % 7, 1 + i % 3, ts, i + 1):
                bars[bar.start] = bar
        want = [candle(INST, bars[s]) for s in sorted(bars)]
        got = (await get(port, "/v1/candles/SIM/X")).json()
        assert (got["source"], got["interval"], got["bars"]) == ("memory", 60, want)
        assert "database_error" not in got
        got = (await get(port, f"/v1/candles/SIM/X?start={T0 + MINUTE}&limit=3")).json()
        assert got["bars"] == want[1:4]
        iso = "2026-11-18T11:09:00Z"  # T0 + 2 minutes
        assert T0 + 2 * MINUTE == 1_795_000_140 * 10**9
        got = (await get(port, f"/v1/candles/SIM/X?start={iso}&end={T0 + 5 * MINUTE}")).json()
        assert got["bars"] == want[2:5]
        got = (await get(port, f"/v1/candles/SIM/X?end={T0 + 5 * MINUTE}&limit=2")).json()
        assert got["bars"] == want[3:5]  # without start: the latest before end
        one_s = (await get(port, "/v1/candles/SIM/X?interval=1")).json()
        assert len(one_s["bars"]) == 40 and one_s["interval"] == 1
    finally:
        await node.stop()


async def test_keys_channels_and_rate_limits_are_the_websockets(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'[defaults]\nmessages_per_s = 5\n\n[[key]]\nid = "a"\nkey = "{KEY_A}"\n'
        'channels = ["book"]\n'
    )
    node, _market, port = await rest_node(replace(OPEN, anonymous=False, keys=str(keys)))
    node.rest.clock = lambda: 1000.0  # no refill while the test runs: exact counts
    try:
        anon = await get(port, "/v1/book/SIM/X")
        assert anon.status == 401 and anon.json()["code"] == "unauthenticated"
        assert anon.headers["www-authenticate"].startswith("Bearer")
        bad = await get(port, "/v1/instruments", {"Authorization": "Bearer nope"})
        assert bad.json() == {
            "code": "unauthenticated",
            "message": "authentication failed: unknown API key",
        }
        bearer = {"Authorization": f"Bearer {KEY_A}"}
        assert (await get(port, "/v1/book/SIM/X", bearer)).status == 200
        assert (await get(port, f"/v1/book/SIM/X?depth=1&token={KEY_A}")).status == 200
        forbidden = await get(port, "/v1/trades/SIM/X", bearer)
        assert forbidden.status == 403
        assert forbidden.json()["message"] == "key 'a' may not use the trades channel"
        statuses = [(await get(port, "/v1/instruments", bearer)).status for _ in range(9)]
        # A burst of two seconds' worth (10), three already taken; the rest are refused.
        assert statuses == [200] * 7 + [429] * 2
        limited = await get(port, "/v1/instruments", bearer)
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["message"] == "more than 5 requests per second"
        assert (await get(port, "/openapi.json")).status == 200  # the document is public
    finally:
        await node.stop()


async def test_the_kraken_examples_of_docs_rest_md_are_real_answers() -> None:
    doc = (ROOT / "docs" / "rest.md").read_text()
    pairs = re.findall(
        r"curl -s '(http://127\.0\.0\.1:8765[^']+)'\n```\n```json\n(.*?)\n```", doc, re.S
    )
    examples = {url.split("8765", 1)[1]: orjson.loads(body) for url, body in pairs}
    paths = ("/v1/instruments?venue=KRAKEN", "/v1/book/KRAKEN/XBT%2FUSD?depth=2")
    kraken = {path: examples[path] for path in paths}  # the fixture's stream, as documented
    node, _market, port = await rest_node()
    try:
        for path, body in kraken.items():
            assert (await get(port, path)).json() == body, path
    finally:
        await node.stop()
