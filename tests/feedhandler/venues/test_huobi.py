"""Huobi spot and coin-margined swaps from their real captures: gzip frames, 292 and 1,274
``depth.step0`` snapshots never crossed, spot ``version`` strictly rising, swap ``mrid``
never falling (39 repeats); out-of-order pushes dropped; pings answered with pongs;
malformed (and non-gzip) frames refused with their reason; trades; listings."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from typing import Any

from feedhandler.files.capture import read_capture
from feedhandler.files.replay import EXCHANGES, check_failures, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.huobi import HuobiBase, HuobiCoinSwapParser, HuobiSpotParser
from hub.config import LIVE_SOURCES
from hub.events import BUY, SELL, BookUpdate, Event, Status, Trade
from tests.conftest import CAPTURES, ROOT
from tests.feedhandler.venues.capture_runner import runner_against_capture

SPOT = CAPTURES / "huobi-spot_depth-step0-trades_2021-04-17.jsonl.zst"
SWAP = CAPTURES / "huobi-coin-swap_depth-step0-trades_2022-02-19.jsonl.zst"


def fed(parser: HuobiBase, path: Any, stop: int | None = None) -> list[Event]:
    out: list[Event] = []
    for n, x in enumerate(read_capture(path)):
        if stop is not None and n >= stop:
            break
        if x.kind == "http":
            out += parser.on_http(x.url, x.data, x.ts_ns)
        elif x.kind == "recv":
            out += parser.on_frame(x.raw or x.data, x.ts_ns)
    return out


def gz(msg: Any) -> bytes:
    return gzip.compress(json.dumps(msg).encode())


def depth(symbol: str, key: str, value: int, bids: Any, asks: Any) -> bytes:
    tick = {key: value, "ts": 1618678069870, "bids": bids, "asks": asks}
    return gz({"ch": f"market.{symbol}.depth.step0", "ts": 1, "tick": tick})


def test_spot_capture_replays_292_snapshots_with_version_strictly_rising() -> None:
    summary = replay_capture(SPOT)
    assert summary["venue"] == "huobi" and EXCHANGES["HUOBI"] == "huobi"
    assert check_failures(summary) == [] and summary["malformed"] == 0
    s = summary["symbols"]
    assert len(s) == 10
    assert sum(v["snapshots"] for v in s.values()) == 292
    assert sum(v["snapshots_stale"] for v in s.values()) == 0
    assert sum(v["trades"] for v in s.values()) == 73
    assert all(v["crossed"] == 0 and v["live"] for v in s.values())
    assert s["borusdt"]["snapshots"] == 27
    assert s["yfihusd"]["bids"][0] == ["49988.88", "0.02886400"]
    assert s["trioeth"]["asks"][0] == ["0.0000009200", "13463.35000000"]


def test_swap_capture_replays_1274_snapshots_mrid_never_falling() -> None:
    summary = replay_capture(SWAP)
    assert summary["venue"] == "huobi-coin-swap" and EXCHANGES["HUOBI_SWAP"] == summary["venue"]
    assert check_failures(summary) == [] and summary["malformed"] == 0
    s = summary["symbols"]
    assert sorted(s) == ["ANT-USD", "ATOM-USD", "GALA-USD", "ICP-USD", "SHIB-USD"]
    assert sum(v["snapshots"] for v in s.values()) == 1274
    assert sum(v["mrid_repeats"] for v in s.values()) == 39
    assert sum(v["snapshots_stale"] for v in s.values()) == 0
    assert s["ATOM-USD"]["snapshots"] == 426
    assert s["SHIB-USD"]["bids"][0] == ["0.00002781", "1"]
    assert s["ICP-USD"]["asks"][0] == ["20.14", "32"]


def test_the_cli_check_passes_on_both_captures() -> None:
    for path in (SPOT, SWAP):
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "replay", "capture", str(path), "--check"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-400:]


def test_an_older_spot_version_is_dropped_and_a_repeat_too() -> None:
    p = HuobiSpotParser()
    fed(p, SPOT, 3)  # the symbols REST
    bids, asks = [[700.5, 1.5]], [[701, 2]]
    assert p.on_frame(depth("borusdt", "version", 10, bids, asks), 1)
    assert p.on_frame(depth("borusdt", "version", 9, [[699, 1]], asks), 2) == []
    assert p.on_frame(depth("borusdt", "version", 10, [[699, 1]], asks), 3) == []
    assert p.extra_stats("borusdt")["snapshots_stale"] == 2
    assert p.books["borusdt"].stats.dropped == 2
    book = p.books["borusdt"].book.snapshot(1)  # price 2 decimals, sizes 8
    assert book == ([(70050, 1_50000000)], [(70100, 2_00000000)])
    events = p.on_frame(depth("borusdt", "version", 11, [[699, 1]], asks), 4)
    assert any(isinstance(e, BookUpdate) for e in events)
    assert p.books["borusdt"].book.snapshot(1)[0] == [(69900, 1_00000000)]


def test_a_refused_push_does_not_move_the_order_key() -> None:
    p = HuobiSpotParser()
    fed(p, SPOT, 3)
    asks = [[701, 2]]
    assert p.on_frame(depth("borusdt", "version", 10, [[700.5, 1.5]], asks), 1)
    tick = {"version": 12, "ts": "soon", "bids": [[699, 1]], "asks": asks}
    refused = p.on_frame(gz({"ch": "market.borusdt.depth.step0", "tick": tick}), 2)
    assert len(refused) == 1 and isinstance(refused[0], Status) and refused[0].state == "stale"
    assert p.malformed == 1 and p.last_key["borusdt"] == 10
    assert p.on_frame(depth("borusdt", "version", 11, [[699, 1]], asks), 3)  # not stale
    assert p.extra_stats("borusdt")["snapshots_stale"] == 0
    assert p.books["borusdt"].book.snapshot(1)[0] == [(69900, 1_00000000)]


def test_a_push_stamped_past_int64_ns_is_refused() -> None:
    p = HuobiSpotParser()
    fed(p, SPOT, 3)
    tick = {"version": 5, "ts": 2**63 // 10**6 + 1, "bids": [[699, 1]], "asks": [[701, 2]]}
    refused = p.on_frame(gz({"ch": "market.borusdt.depth.step0", "tick": tick}), 1)
    assert not [e for e in refused if isinstance(e, BookUpdate)]
    assert p.malformed == 1 and "borusdt" not in p.last_key
    tick["ts"] = 2**63 // 10**6  # the last ms that fits
    (update,) = [
        e
        for e in p.on_frame(gz({"ch": "market.borusdt.depth.step0", "tick": tick}), 2)
        if isinstance(e, BookUpdate)
    ]
    assert update.ts_event == 2**63 // 10**6 * 10**6


def test_an_equal_swap_mrid_is_applied_an_older_one_dropped() -> None:
    p = HuobiCoinSwapParser()
    fed(p, SWAP, 4)
    asks = [[26.6, 5]]
    assert p.on_frame(depth("ATOM-USD", "mrid", 100, [[26.5, 3]], asks), 1)
    assert p.on_frame(depth("ATOM-USD", "mrid", 100, [[26.51, 4]], asks), 2)
    assert p.on_frame(depth("ATOM-USD", "mrid", 99, [[26.4, 4]], asks), 3) == []
    assert p.extra_stats("ATOM-USD") == {"snapshots_stale": 1, "mrid_repeats": 1}
    assert p.books["ATOM-USD"].book.snapshot(1)[0] == [(265100, 4)]


def test_ping_is_answered_with_pong() -> None:
    p = HuobiSpotParser()
    assert p.on_frame(gz({"ping": 1618678073643}), 1) == []
    assert p.answers() == ['{"pong": 1618678073643}']
    assert p.answers() == []
    fed(HuobiSpotParser(), SPOT)  # the capture's six pings parse without error


def test_bad_gzip_and_bad_frames_are_refused_with_their_reason() -> None:
    p = HuobiCoinSwapParser()
    fed(p, SWAP, 4)
    p.on_frame(depth("ATOM-USD", "mrid", 100, [[26.5, 3]], [[26.6, 5]]), 1)
    broken = gz({"ping": 1})[:-6]
    events = p.on_frame(broken, 2)
    assert p.malformed == 1 and p.reasons == {"json": 1}
    assert not p.books["ATOM-USD"].live  # chained = False: every book resyncs
    assert any(e.symbol == "ATOM-USD" for e in events)
    p.on_frame(depth("ATOM-USD", "mrid", 101, [[26.5, 3]], [[26.6, 5]]), 3)
    assert p.books["ATOM-USD"].live
    p.on_frame(depth("ATOM-USD", "mrid", 102, [[26.55, 1.5]], [[26.6, 5]]), 4)
    assert p.reasons == {"json": 1, "number": 1}  # half a contract
    assert not p.books["ATOM-USD"].live
    p.on_frame(depth("NOPE-USD", "mrid", 1, [], []), 5)
    assert p.reasons["symbol"] == 1


def test_trades_are_normalised() -> None:
    spot_trades = [e for e in fed(HuobiSpotParser(), SPOT) if isinstance(e, Trade)]
    first = spot_trades[0]
    assert (first.symbol, first.trade_id, first.side) == ("trioeth", "100045088885", BUY)
    assert first.ts_event == 1618678027940 * 1_000_000 and first.ts_recv > first.ts_event
    assert first.price == 9200 and first.size == 2099588000000  # 9.2E-7 at 10 decimals
    swap_trades = [e for e in fed(HuobiCoinSwapParser(), SWAP) if isinstance(e, Trade)]
    atom = swap_trades[0]
    assert (atom.symbol, atom.trade_id, atom.side, atom.size) == (
        "ATOM-USD",
        "743774717120000",
        BUY,
        6,
    )
    assert {t.side for t in swap_trades + spot_trades} <= {BUY, SELL}


def test_listings_and_units() -> None:
    spot = HuobiSpotParser()
    fed(spot, SPOT, 3)
    assert spot.listings["btcusdt"].canonical == "BTC-USDT"
    assert spot.units_for("trioeth")[0].text == "0.0000000001"
    swap = HuobiCoinSwapParser()
    fed(swap, SWAP, 4)
    btc = swap.listings["BTC-USD"]
    assert (btc.canonical, btc.settle, btc.contract_size, btc.inverse) == (
        "BTC-USD-PERP",
        "BTC",
        "100",
        True,
    )
    assert swap.units_for("BTC-USD")[0].text == "0.1"


def test_registry_and_subscriptions() -> None:
    assert "huobi" in LIVE_SOURCES and "huobi-coin-swap" in LIVE_SOURCES
    assert (VENUES["huobi"].url, VENUES["huobi"].rest) == (
        "wss://api.huobi.pro/ws",
        "https://api.huobi.pro",
    )
    assert VENUES["huobi-coin-swap"].url == "wss://api.hbdm.com/swap-ws"
    p = HuobiCoinSwapParser()
    assert p.instrument_urls("https://api.hbdm.com") == [
        "https://api.hbdm.com/swap-api/v1/swap_contract_info"
    ]
    assert [json.loads(m) for m in p.subscribe(["BTC-USD"])] == [
        {"sub": "market.BTC-USD.depth.step0", "id": "1"},
        {"sub": "market.BTC-USD.trade.detail", "id": "2"},
    ]
    assert [json.loads(m) for m in p.recover(["BTC-USD"])] == [
        {"unsub": "market.BTC-USD.depth.step0", "id": "3"},
        {"sub": "market.BTC-USD.depth.step0", "id": "4"},
    ]


async def test_the_live_runner_against_the_swap_capture_ends_with_the_replays_books() -> None:
    symbols = ["ANT-USD", "ATOM-USD", "GALA-USD", "ICP-USD", "SHIB-USD"]
    runner, mirror, _venue = await runner_against_capture(SWAP, HuobiCoinSwapParser, symbols)
    parser = runner.parser
    assert parser.malformed == 0
    replayed = HuobiCoinSwapParser()
    fed(replayed, SWAP)
    for symbol in symbols:
        sync = parser.books[symbol]
        assert sync.live and sync.book.snapshot() == replayed.books[symbol].book.snapshot()
        assert mirror.books[symbol].snapshot() == sync.book.snapshot()
