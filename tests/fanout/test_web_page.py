"""The live page renders books and trades from the public protocol in headless Chromium.

Driven by Playwright for Python with Debian's chromium (no browser download).
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright

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


LADDER_JS = """() => [...document.querySelectorAll('#ladder tbody tr')].map(
    (tr) => [tr.children[1].textContent, tr.children[2].textContent])"""
"""Both sides of the ladder read in one go: two reads could straddle a render, and with a
moving price compare one moment's bid with a later moment's ask."""


async def ladder(page: Page) -> tuple[list[str], list[str]]:
    rows: list[list[str]] = await page.evaluate(LADDER_JS)
    return [b for b, _a in rows if b], [a for _b, a in rows if a]


async def drive(url: str) -> dict[str, Any]:
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": 1300, "height": 800})

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                errors.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url)
        await page.wait_for_function("document.querySelectorAll('#ladder td.bid').length >= 10")
        await page.wait_for_function("document.querySelectorAll('#tape tbody tr').length >= 3")
        await page.wait_for_function("Number(document.getElementById('chart').dataset.candles) > 1")
        first_candle = await page.inner_text("#c-last")
        first_ladder = await ladder(page)
        first_seq = int(await page.inner_text("#h-seq"))
        first_tape = await page.inner_text("#tape tbody")
        await page.wait_for_timeout(1500)
        second_ladder = await ladder(page)
        second_seq = int(await page.inner_text("#h-seq"))
        second_tape = await page.inner_text("#tape tbody")
        second_candle = await page.inner_text("#c-last")
        out_dir = ROOT / "test-output"
        out_dir.mkdir(exist_ok=True)
        await page.screenshot(path=str(out_dir / "demo-page.png"), full_page=True)
        await browser.close()
    return {
        "errors": errors,
        "ladders": (first_ladder, second_ladder),
        "seqs": (first_seq, second_seq),
        "tapes": (first_tape, second_tape),
        "candles": (first_candle, second_candle),
    }


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (scripts/install.sh installs it)"
)
def test_page_ladder_and_tape_update_live_without_console_errors(hub_process: Any) -> None:
    demo = hub_process("demo", "--port", "0", "--rate", "300", "--symbols", "BTC-USD")
    port = int(demo.wait_for(r"live page\s+http://127.0.0.1:(\d+)/").group(1))
    seen = asyncio.run(drive(f"http://127.0.0.1:{port}/"))
    assert seen["errors"] == []
    for bids, asks in seen["ladders"]:
        assert bids == sorted(bids, key=float, reverse=True)
        assert asks == sorted(asks, key=float)
        assert float(bids[0]) < float(asks[0])  # never crossed
    assert seen["seqs"][1] > seen["seqs"][0]  # the book kept updating
    assert seen["tapes"][0] != seen["tapes"][1]  # and so did the tape
    assert seen["candles"][0] != seen["candles"][1]  # and the candle chart
    assert seen["candles"][1].startswith("O ") and "trades)" in seen["candles"][1]
    assert (ROOT / "test-output" / "demo-page.png").stat().st_size > 10_000
    assert demo.stop() == 0
