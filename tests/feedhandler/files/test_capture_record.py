"""``hub capture`` records what a replay needs: replaying the recording gives the same
books and counts as replaying the traffic the (mock) venue played."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from feedhandler.files.capture import read_capture, read_header
from feedhandler.files.record import record
from feedhandler.files.replay import replay_capture
from testing.mock_venue import MockCaptureVenue
from tests.conftest import CAPTURES

CASES = [
    (
        "coinbase",
        "coinbase-advanced-trade_BTC-USD_ETH-USD_2026-08-09.jsonl.zst",
        ["BTC-USD", "ETH-USD"],
    ),
    ("kraken", "kraken-v1-book10_XBT-USD_2023-08-30.jsonl.zst", ["XBT/USD"]),
]


@pytest.mark.parametrize(("venue", "name", "symbols"), CASES)
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst"])
def test_recording_replays_like_the_original(
    tmp_path: Path, venue: str, name: str, symbols: list[str], suffix: str
) -> None:
    original = CAPTURES / name
    mock = MockCaptureVenue(original)
    out = tmp_path / f"rec{suffix}"

    async def go() -> dict[str, object]:
        port = await mock.start()
        try:
            return await record(
                venue,
                symbols,
                out,
                url=f"ws://127.0.0.1:{port}",
                rest_url=f"http://127.0.0.1:{port}",
                frames=len(mock.frames),
                duration=30,
            )
        finally:
            await mock.stop()

    summary = asyncio.run(go())
    assert summary["frames"] == len(mock.frames)
    header = read_header(out)
    assert header["exchange"] == venue.upper() and header["config"]["symbols"] == symbols
    lines = list(read_capture(out))
    sent = [json.loads(x.data) for x in lines if x.kind == "send"]
    assert sent and sent == [json.loads(m) for m in mock.received]  # our subscribe, as sent
    recorded = [x.data for x in lines if x.kind == "recv"]
    assert recorded == mock.frames  # every frame, byte for byte, in order
    if venue == "coinbase":
        assert [x.url.split("/", 3)[3] for x in lines if x.kind == "http"] == [
            "api/v3/brokerage/market/products"
        ]
    mine, theirs = replay_capture(out, venue), replay_capture(original, venue)
    assert mine["symbols"] == theirs["symbols"]
    assert all(s["book_updates"] > 0 for s in mine["symbols"].values())
