"""The page in replay mode against a real node's ``/replay`` (``hub demo`` with replay
folders holding ``hub sample``'s files), in headless Chromium: it asks for its replay in
the URL, names the stream from the replay's ``instrument`` message (units, canonical id),
runs on the replay's clock, shows the book the frames built and the trades, and says the
replay ended with the node's own count."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from feedhandler.files.replay import capture_batches
from feedhandler.files.sample import write_samples
from feedhandler.venues import VENUES
from hub.decimals import Unit
from tests.fanout.test_web_page import (
    PAGE_JS,
    Seen,
    browser_page,
    check_ladder,
    check_tape,
    needs_chromium,
    shot,
)

GEMINI = "gemini-sample_l2-trades_2019-12-30.jsonl.zst"


def parser_book(folder: Path) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The Gemini parser's own final BTCUSD book of the sample capture."""
    parser = VENUES["gemini"].parser()
    for _batch in capture_batches(folder / GEMINI, parser):
        pass
    return parser.books["BTCUSD"].book.snapshot()


async def replay_page(port: int) -> tuple[Seen, dict[str, Any]]:
    seen = Seen()
    async with browser_page(800, seen) as page:
        query = f"replay=capture:{GEMINI}&symbols=BTCUSD&speed=max"
        await page.goto(f"http://127.0.0.1:{port}/?{query}")
        await page.wait_for_function(
            "document.getElementById('banner').textContent.includes('ended')"
        )
        await page.wait_for_timeout(500)  # the last frames rendered
        await shot(page, "page-10-real-replay-ended.png")
        out = await page.evaluate(PAGE_JS)
        for name in ("banner", "h-lat-label", "h-lat", "h-state", "title", "h-seq", "conn"):
            out[name] = await page.inner_text(f"#{name}")
    return seen, out


@needs_chromium
def test_page_replays_a_sample_capture_from_the_nodes_replay_endpoint(
    hub_process: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "samples"
    write_samples(folder, 1)
    demo = hub_process("demo", "--port", "0", env={"HUB_FANOUT__REPLAY_DIRS": str(folder)})
    port = int(demo.wait_for(r"live page\s+http://127.0.0.1:(\d+)/").group(1))
    seen, out = asyncio.run(replay_page(port))
    assert seen.errors == []
    playing = next(m for m in seen.frames if m.get("type") == "replay")
    assert playing["state"] == "playing" and playing["symbols"] == ["BTCUSD"]
    ended = [m for m in seen.frames if m.get("type") == "replay"][-1]
    assert ended["state"] == "ended"
    assert out["banner"].startswith("replay ended at 2019-12-30 ")
    assert out["banner"].endswith(f"after {ended['events']} events")
    assert out["h-state"] == "replay ended" and out["h-lat-label"] == "replay clock (event time)"
    assert out["title"] == "BTCUSD · BTC-USD (GEMINI)"  # from the instrument message
    # The ladder is the book the frames built, in the instrument's units...
    bids, asks = parser_book(folder)
    check_ladder(seen, "BTCUSD", out, "0.01", "0.000001", min(len(bids), 12) + min(len(asks), 12))
    check_tape(seen, "BTCUSD", out, "0.01", "0.000001")
    # ...and that book is the Gemini parser's own final book of the capture.
    tick, lot = Unit("0.01"), Unit("0.000001")
    shown = {r["cells"][0]: r["cells"][1] for r in out["rows"]}
    want = {tick.to_str(p): lot.to_str(s) for p, s in [*bids[:12], *asks[:12]]}
    assert shown == want
    assert demo.stop() == 0
