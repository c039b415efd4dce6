"""The live page in headless Chromium, against a real ``hub demo`` node.

Driven by Playwright for Python with Debian's chromium (no browser download). The test
keeps every WebSocket frame the page received and rebuilds the book and trades from them
itself, so the ladder, tape, spread and mid are checked against what the page was sent.
Screenshots at several moments go to test-output/.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import pytest
from playwright.async_api import ConsoleMessage, Page, WebSocket, async_playwright

from fanout.node import WEB_DIR
from tests.conftest import CAPTURES, ROOT

CHROMIUM = shutil.which("chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUT = ROOT / "test-output"
CAPTURE = CAPTURES
GEMINI = "gemini-spot_l2-trades_2021-06-24.jsonl.zst"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (scripts/install.sh installs it)"
)
needs_chart = pytest.mark.skipif(
    not (WEB_DIR / "vendor" / "lightweight-charts.standalone.production.js").is_file(),
    reason="chart library not fetched (scripts/install.sh, needs npm)",
)

PAGE_JS = """() => ({
  seq: Number(document.getElementById('ladder').dataset.seq),
  rows: [...document.querySelectorAll('#ladder tbody tr:not(.mid)')].map((tr) => ({
    side: tr.className, cells: [...tr.children].map((td) => td.textContent),
    depth: tr.style.getPropertyValue('--depth')})),
  spread: document.getElementById('spread')?.textContent,
  mid: document.getElementById('mid')?.textContent,
  tape: [...document.querySelectorAll('#tape tbody tr')].map((tr) => ({
    seq: Number(tr.dataset.seq), side: tr.className,
    cells: [...tr.children].map((td) => td.textContent)})),
})"""
"""Ladder, spread, mid and tape read in one go (two reads could straddle a render)."""


@dataclass
class Seen:
    """What the page was sent and what it logged."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_socket(self, ws: WebSocket) -> None:
        def got(payload: str | bytes) -> None:
            data = orjson.loads(payload)
            self.frames.extend(data if isinstance(data, list) else [data])

        ws.on("framereceived", got)

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)

    def of(self, kind: str, symbol: str) -> list[dict[str, Any]]:
        return [m for m in self.frames if m.get("type") == kind and m.get("symbol") == symbol]

    def book_at(self, symbol: str, seq: int) -> tuple[dict[str, str], dict[str, str]]:
        """The book of ``symbol`` after update ``seq``, from its last snapshot at or before it."""
        msgs = [m for m in self.frames if m.get("symbol") == symbol]
        starts = [
            i
            for i, m in enumerate(msgs)
            if m["type"] == "snapshot" and m.get("channel") == "book" and m["seq"] <= seq
        ]
        snap = msgs[starts[-1]]
        bids, asks = dict(snap["bids"]), dict(snap["asks"])
        at = snap["seq"]
        for m in msgs[starts[-1] + 1 :]:
            if m["type"] != "book" or m["epoch"] != snap["epoch"] or m["seq"] <= at:
                continue
            if m["seq"] > seq:
                break
            assert m["first"] <= at + 1, "the page was sent a gap"
            for side, levels in ((bids, m["bids"]), (asks, m["asks"])):
                for price, size in levels:
                    if Decimal(size) == 0:
                        side.pop(price, None)
                    else:
                        side[price] = size
            at = m["seq"]
        assert at == seq, f"frames reach seq {at}, the page showed {seq}"
        return bids, asks


@asynccontextmanager
async def browser_page(width: int, seen: Seen) -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": width, "height": 900})
        page.on("console", seen.on_console)
        page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
        page.on("websocket", seen.on_socket)
        try:
            yield page
        finally:
            await browser.close()


async def shot(page: Page, name: str) -> None:
    OUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUT / name), full_page=True)


def q(text: str, step: str) -> str:
    return str(Decimal(text).quantize(Decimal(step)))


def check_ladder(
    seen: Seen, symbol: str, view: dict[str, Any], tick: str, lot: str, rows: int = 24
) -> None:
    """Every shown level, its cumulative size and depth bar, spread and mid: those of the
    book the page was sent, at the seq the ladder says it shows (``rows`` of them)."""
    bids, asks = seen.book_at(symbol, view["seq"])
    top_bids = sorted(bids.items(), key=lambda lv: Decimal(lv[0]), reverse=True)[:12]
    top_asks = sorted(asks.items(), key=lambda lv: Decimal(lv[0]))[:12]

    def side(levels: list[tuple[str, str]]) -> list[tuple[str, str, Decimal]]:
        cum, out = Decimal(0), []
        for price, size in levels:
            cum += Decimal(size)
            out.append((q(price, tick), q(size, lot), cum))
        return out

    want_bids, want_asks = side(top_bids), side(top_asks)
    biggest = max(want_bids[-1][2], want_asks[-1][2])
    want = [("ask", lv) for lv in reversed(want_asks)] + [("bid", lv) for lv in want_bids]
    assert len(view["rows"]) == len(want) == rows
    for row, (kind, (price, size, cum)) in zip(view["rows"], want, strict=True):
        assert row["side"] == kind
        assert row["cells"] == [price, size, q(str(cum), lot)]
        assert row["depth"] == f"{cum / biggest * 100:.1f}%"
    best_bid, best_ask = Decimal(top_bids[0][0]), Decimal(top_asks[0][0])
    assert best_bid < best_ask  # never crossed
    assert view["spread"] == q(str(best_ask - best_bid), tick)
    mid = (best_bid + best_ask) / 2
    assert Decimal(view["mid"]) == mid and len(view["mid"].split(".")[1]) >= len(tick) - 2


def check_tape(seen: Seen, symbol: str, view: dict[str, Any], tick: str, lot: str) -> None:
    trades = {t["seq"]: t for t in seen.of("trade", symbol)}
    assert len(view["tape"]) >= 3
    seqs = [row["seq"] for row in view["tape"]]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    for row in view["tape"]:
        t = trades[row["seq"]]
        assert row["side"] == t["side"] in ("buy", "sell", "none")
        assert row["cells"][1:] == [t["side"], q(t["price"], tick), q(t["size"], lot)]
        assert len(row["cells"][0]) == 12 and row["cells"][0].count(":") == 2


def check_summed_bars(base: list[dict[str, Any]], shown: list[dict[str, Any]], span: int) -> None:
    """Each shown bar is its base bars summed: open of the first, close of the last, the
    extremes, exact volume and trade count."""
    assert base and all(b["start"] % (300 * 10**9) == 0 for b in base)  # 5m bars
    buckets: dict[int, list[dict[str, Any]]] = {}
    for b in sorted(base, key=lambda b: b["start"]):
        buckets.setdefault(b["start"] - b["start"] % (span * 10**9), []).append(b)
    assert sorted(b["start"] for b in shown) == sorted(buckets)
    for bar in shown:
        parts = buckets[bar["start"]]
        assert bar["open"] == parts[0]["open"] and bar["close"] == parts[-1]["close"]
        assert Decimal(bar["high"]) == max(Decimal(p["high"]) for p in parts)
        assert Decimal(bar["low"]) == min(Decimal(p["low"]) for p in parts)
        assert Decimal(bar["volume"]) == sum(Decimal(p["volume"]) for p in parts)
        assert bar["trades"] == sum(p["trades"] for p in parts)


async def live_session(port: int) -> Seen:
    seen = Seen()
    base = f"http://127.0.0.1:{port}/"
    async with browser_page(1300, seen) as page:
        await page.goto(base)
        await page.wait_for_function("document.querySelectorAll('#ladder tr.bid').length >= 12")
        await page.wait_for_function("document.querySelectorAll('#tape tbody tr').length >= 3")
        await page.wait_for_function("mdhub.chartReady() && mdhub.state.base.size >= 1")
        assert await page.input_value("#interval") == "60"  # the protocol's default
        options = await page.eval_on_selector_all("#interval option", "os => os.map(o => o.value)")
        assert options == ["1", "60", "300", "900", "3600", "86400"]
        picker = await page.eval_on_selector_all(
            "#symbol optgroup", "gs => gs.map(g => [g.label, [...g.children].map(o => o.text)])"
        )
        assert picker == [["SIM", ["BTC-USD", "ETH-USD"]]]
        await page.wait_for_timeout(300)
        await shot(page, "page-1-live-1m.png")
        view = await page.evaluate(PAGE_JS)
        await page.wait_for_timeout(300)  # the frames the page got reach this side
        check_ladder(seen, "BTC-USD", view, "0.01", "0.00001")
        check_tape(seen, "BTC-USD", view, "0.01", "0.00001")
        # the chart holds the candles snapshot's bars (and their updates)
        snap = seen.of("candles", "BTC-USD")[-1]
        assert snap["interval"] == 60
        shown = await page.evaluate("[...mdhub.state.base.keys()]")
        assert {b["start"] for b in snap["bars"]} <= set(shown)
        assert (await page.inner_text("#h-lat-label")).startswith("latency")
        assert (await page.inner_text("#h-lat")).endswith(" ms")

        await page.select_option("#interval", "1")
        await page.wait_for_function("mdhub.state.base.size >= 3")
        await page.wait_for_timeout(300)
        first = await page.evaluate("mdhub.chartRange()")
        seq1 = int(await page.inner_text("#h-seq"))
        await shot(page, "page-2-live-1s.png")
        await page.wait_for_timeout(3000)
        second, newest = await page.evaluate(
            "[mdhub.chartRange(), Math.max(...mdhub.state.base.keys())]"
        )
        seq2 = int(await page.inner_text("#h-seq"))
        await shot(page, "page-3-live-1s-later.png")
        assert second["to"] > first["to"]  # the time axis moved on
        assert first["from"] < newest / 1e9 <= second["to"]
        assert seq2 > seq1 and int(await page.inner_text("#h-rate")) > 0
        last = await page.inner_text("#c-last")
        assert " O " in last and last.endswith("trades)")

        await page.select_option("#interval", "900")  # no such channel interval: 5m bars summed
        await page.wait_for_function("mdhub.state.base.size >= 1 && mdhub.chartBars().length >= 1")
        base, shown = await page.evaluate("[[...mdhub.state.base.values()], mdhub.chartBars()]")
        check_summed_bars(base, shown, 900)
        assert seen.of("candles", "BTC-USD")[-1]["interval"] == 300  # what it asked for
        await page.select_option("#symbol", label="ETH-USD")
        await page.wait_for_function(
            "document.getElementById('title').textContent.startsWith('ETH-USD')"
            " && document.querySelectorAll('#ladder tr.bid').length >= 12"
            " && document.querySelectorAll('#tape tbody tr').length >= 3"
        )
        await page.wait_for_timeout(300)
        view = await page.evaluate(PAGE_JS)
        await page.wait_for_timeout(300)
        check_ladder(seen, "ETH-USD", view, "0.01", "0.0001")
        check_tape(seen, "ETH-USD", view, "0.01", "0.0001")
        await shot(page, "page-4-live-eth.png")

        await page.set_viewport_size({"width": 375, "height": 800})
        await page.wait_for_timeout(500)
        widths = await page.evaluate(
            "[document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"
        )
        assert widths == [375, 375, 375]  # no horizontal overflow at phone width
        chart_width = await page.evaluate("document.getElementById('chart').clientWidth")
        assert 300 <= chart_width <= 375
        await shot(page, "page-5-phone-375.png")
    return seen


@needs_chromium
@needs_chart
def test_page_shows_market_view_of_live_book_trades_and_candles(hub_process: Any) -> None:
    demo = hub_process("demo", "--port", "0", "--rate", "300", "--symbols", "BTC-USD,ETH-USD")
    port = int(demo.wait_for(r"live page\s+http://127.0.0.1:(\d+)/").group(1))
    seen = asyncio.run(live_session(port))
    assert seen.errors == []
    for name in ("page-1-live-1m.png", "page-3-live-1s-later.png", "page-5-phone-375.png"):
        assert (OUT / name).stat().st_size > 10_000
    assert demo.stop() == 0


async def recorded_session(port: int) -> tuple[Seen, dict[str, Any]]:
    seen = Seen()
    async with browser_page(1000, seen) as page:
        await page.goto(f"http://127.0.0.1:{port}/?symbol=FILUSD")
        await page.wait_for_function("document.querySelectorAll('#tape tbody tr').length >= 1")
        await page.wait_for_function("document.getElementById('h-lat').textContent !== '-'")
        playing = {
            "label": await page.inner_text("#h-lat-label"),
            "clock": await page.inner_text("#h-lat"),
        }
        await shot(page, "page-6-recorded-playing.png")
        await page.wait_for_selector("#banner:not([hidden])", timeout=90_000)
        await page.wait_for_timeout(300)
        await shot(page, "page-7-recorded-closed.png")
        out = {
            "playing": playing,
            "banner": await page.inner_text("#banner"),
            "label": await page.inner_text("#h-lat-label"),
            "clock": await page.inner_text("#h-lat"),
            "state": await page.inner_text("#h-state"),
            "range": await page.evaluate("mdhub.chartRange()"),
        }
    return seen, out


@needs_chromium
@pytest.mark.skipif(not (CAPTURE / GEMINI).is_file(), reason="shared capture not present")
def test_page_of_a_file_replay_keeps_event_time_and_says_the_stream_closed(
    hub_process: Any,
) -> None:
    """``hub demo`` of a 2021 capture: no wall-clock latency (years), the replay's own
    clock instead, and a banner once the streams are ``closed``."""
    demo = hub_process(
        "demo", "--port", "0", "--source", "capture", "--file", str(CAPTURE / GEMINI),
        "--speed", "2",
    )  # fmt: skip
    port = int(demo.wait_for(r"live page\s+http://127.0.0.1:(\d+)/").group(1))
    seen, out = asyncio.run(recorded_session(port))
    assert seen.errors == []
    assert out["playing"]["label"] == "replay clock (event time)"
    assert out["playing"]["clock"].startswith("2021-06-24 ")
    assert out["banner"].startswith("stream closed: its source ended")
    assert out["state"].startswith("closed")
    assert out["label"] == "replay clock (event time)" and "ms" not in out["clock"]
    last_trade = max(t["ts_event"] for t in seen.of("trade", "FILUSD"))
    assert out["clock"].startswith("2021-06-24 ")
    assert out["clock"][11:19] >= _hms(last_trade)
    if out["range"] is not None:  # the chart's axis is the capture's time, not today's
        assert out["range"]["to"] < 1_700_000_000
    assert demo.stop() == 0


def _hms(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%H:%M:%S")


T0 = 1_624_493_681_000_000_000  # 2021-06-24 00:14:41 UTC


def scripted_replay() -> list[list[dict[str, Any]]]:
    """What a /replay endpoint sends (the replay spec of issue #19): a ``playing`` status,
    the live protocol's messages in event time, then ``ended``."""
    key = {"venue": "GEMINI", "symbol": "BTCUSD"}
    frames: list[list[dict[str, Any]]] = [
        [
            {
                "type": "replay",
                "state": "playing",
                "from": "2021-06-24T00:14:41Z",
                "to": "2021-06-24T00:15:00Z",
                "speed": 10,
                "sources": ["capture:gemini"],
            },
            {
                "type": "snapshot", "channel": "book", **key, "canonical": "BTC-USD",
                "epoch": 7, "seq": 1, "ts_event": T0, "reason": "replay",
                "bids": [["34000.01", "0.5"], ["34000.00", "1.25"]],
                "asks": [["34000.05", "0.75"], ["34000.10", "2"]],
            },
        ]
    ]  # fmt: skip
    for i in range(1, 6):
        ts = T0 + i * 1_500_000_000
        frames.append(
            [
                {
                    "type": "book", **key, "epoch": 7, "first": i + 1, "seq": i + 1,
                    "ts_event": ts, "ts_recv": ts + 1000,
                    "bids": [["34000.01", str(Decimal("0.5") + i)]], "asks": [],
                },
                {
                    "type": "trade", **key, "epoch": 7, "seq": i, "trade_id": str(i),
                    "price": f"34000.0{i}", "size": "0.1", "side": "buy" if i % 2 else "sell",
                    "ts_event": ts, "ts_recv": ts + 1000,
                },
            ]
        )  # fmt: skip
    frames.append([{"type": "replay", "state": "ended", "clock": T0 + 7_500_000_000, "events": 11}])
    return frames


@asynccontextmanager
async def stand_in_replay_node(requests: list[Any], vendor: bool = True) -> AsyncIterator[int]:
    """The page's files and a scripted /replay endpoint on one port; ``vendor=False``: as
    a node without the chart library (404, as when npm was missing)."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response

    from fanout.node import STATIC
    from hub.ops import response

    def files(conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?")[0]
        if path == "/replay":
            return None
        if path.startswith("/vendor/") and not vendor:
            return response(404, b"not found\n", "text/plain")
        if path in STATIC and (WEB_DIR / STATIC[path][0]).is_file():
            return response(200, (WEB_DIR / STATIC[path][0]).read_bytes(), STATIC[path][1])
        return response(404, b"not found\n", "text/plain")

    async def replay(ws: ServerConnection) -> None:
        assert ws.request is not None
        requests.append(ws.request.path)
        requests.append(orjson.loads(await ws.recv()))
        for frame in scripted_replay():
            await ws.send(orjson.dumps(frame).decode())
            await asyncio.sleep(0.15)
        await ws.wait_closed()  # the page keeps the stream open until it goes

    async with serve(replay, "127.0.0.1", 0, process_request=files) as server:
        yield server.sockets[0].getsockname()[1]


async def replay_session() -> tuple[Seen, list[Any], dict[str, Any]]:
    seen, requests = Seen(), list[Any]()
    async with stand_in_replay_node(requests) as port, browser_page(800, seen) as page:
        query = "replay=capture:gemini&from=2021-06-24T00:14:41Z&to=2021-06-24T00:15:00Z&speed=10"
        await page.goto(f"http://127.0.0.1:{port}/?{query}")
        await page.wait_for_function(
            "document.getElementById('banner').textContent.includes('ended')"
        )
        await page.wait_for_timeout(300)
        await shot(page, "page-8-replay-ended.png")
        out = await page.evaluate(PAGE_JS)
        for name in ("banner", "h-lat-label", "h-lat", "h-state", "title", "h-seq"):
            out[name] = await page.inner_text(f"#{name}")
        out["bars"] = await page.evaluate("mdhub.state.base.size")
    return seen, requests, out


@needs_chromium
def test_page_in_replay_mode_asks_replay_for_its_range_and_says_when_it_ended() -> None:
    """?replay=..&from=..&to=..&speed=.. opens /replay with that request; the page runs on
    the replay's clock and shows that it ended (against a scripted stand-in of the node's
    /replay endpoint, for exact clocks and rows; test_web_replay.py plays the real one)."""
    seen, requests, out = asyncio.run(replay_session())
    assert seen.errors == []
    assert requests == [
        "/replay?from=2021-06-24T00%3A14%3A41Z&to=2021-06-24T00%3A15%3A00Z&speed=10"
        "&sources=capture%3Agemini",
        {
            "op": "replay",
            "sources": ["capture:gemini"],
            "from": "2021-06-24T00:14:41Z",
            "to": "2021-06-24T00:15:00Z",
            "speed": 10,
        },
    ]
    assert out["banner"] == "replay ended at 2021-06-24 00:14:48.500 UTC after 11 events"
    assert out["h-lat-label"] == "replay clock (event time)"
    assert out["h-lat"] == "2021-06-24 00:14:48.500 UTC"
    assert out["h-state"] == "replay ended" and out["h-seq"] == "6"
    assert out["title"] == "BTCUSD · BTC-USD (GEMINI)"
    check_ladder_rows = [(r["side"], r["cells"]) for r in out["rows"]]
    assert check_ladder_rows == [
        ("ask", ["34000.10", "2.00", "2.75"]),  # no tick or lot known: the snapshot's places
        ("ask", ["34000.05", "0.75", "0.75"]),
        ("bid", ["34000.01", "5.50", "5.50"]),
        ("bid", ["34000.00", "1.25", "6.75"]),
    ]
    assert out["spread"] == "0.04" and out["mid"] == "34000.03"
    assert [r["seq"] for r in out["tape"]] == [5, 4, 3, 2, 1]
    assert out["tape"][0]["cells"] == ["00:14:48.500", "buy", "34000.05", "0.10"]
    assert out["bars"] >= 1  # built from the replay's trades (it sent no candles)


async def no_chart_session() -> tuple[Seen, dict[str, Any]]:
    seen, requests = Seen(), list[Any]()
    async with (
        stand_in_replay_node(requests, vendor=False) as port,
        browser_page(800, seen) as page,
    ):
        await page.goto(f"http://127.0.0.1:{port}/?replay=capture:gemini&speed=max")
        await page.wait_for_function(
            "document.getElementById('banner').textContent.includes('ended')"
        )
        await shot(page, "page-9-without-chart-library.png")
        out = await page.evaluate(PAGE_JS)
        out["note"] = await page.is_visible("#chart-note")
        out["chart"] = await page.is_visible("#chart")
        out["note_text"] = await page.inner_text("#chart-note")
    return seen, out


@needs_chromium
def test_page_without_the_chart_library_shows_the_rest_and_says_why() -> None:
    seen, out = asyncio.run(no_chart_session())
    # the one console error is the library's 404; the page's own scripts ran
    assert len(seen.errors) == 1 and "404" in seen.errors[0]
    assert out["note"] and not out["chart"]
    assert "scripts/install.sh" in out["note_text"] and "npm" in out["note_text"]
    assert len(out["rows"]) == 4 and out["spread"] == "0.04"
    assert [r["seq"] for r in out["tape"]] == [5, 4, 3, 2, 1]
