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
from tests.conftest import ROOT

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
CAPTURE = ROOT.parent.parent / "shared" / "data" / "captures"
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


def check_ladder(seen: Seen, symbol: str, view: dict[str, Any], tick: str, lot: str) -> None:
    """Every shown level, its cumulative size and depth bar, spread and mid: those of the
    book the page was sent, at the seq the ladder says it shows."""
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
    assert len(view["rows"]) == len(want) == 24
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
        second = await page.evaluate("mdhub.chartRange()")
        seq2 = int(await page.inner_text("#h-seq"))
        await shot(page, "page-3-live-1s-later.png")
        assert second["to"] > first["to"]  # the time axis moved on
        newest = max(await page.evaluate("[...mdhub.state.base.keys()]"))
        assert first["from"] < newest / 1e9 <= second["to"]
        assert seq2 > seq1 and int(await page.inner_text("#h-rate")) > 0
        last = await page.inner_text("#c-last")
        assert " O " in last and last.endswith("trades)")

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
