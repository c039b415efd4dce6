"""OKX v5 from the real capture: every checksum verifies, a corrupted update fails its
checksum and the book recovers at the next snapshot, malformed frames are refused whole,
prices are exact ticks, and the live runner against the capture played back over a real
WebSocket ends with the replay's books."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from bus.kafka import consumer, start_consumer
from feedhandler.files.capture import read_capture
from feedhandler.files.replay import EXCHANGES, capture_batches, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.base import ParserBase
from feedhandler.venues.okx import OkxParser, TextBook
from hub.config import KafkaConfig
from hub.events import BookUpdate, Status, Trade, decode
from orderbook_core import L2Book
from testing.mock_venue import MockCaptureVenue
from tests.conftest import CAPTURES, stack_env
from tests.feedhandler.fuzzing import Case, capture_items, fuzzed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.test_live_feed import VenueThread

CAPTURE = CAPTURES / "okx-spot-futures-swap_books-trades-tickers_2022-05-13.jsonl.zst"
VERIFIED = {"BTC-USD-220527": 99, "BTC-USDT": 98, "UNI-USD-SWAP": 93}
"""Per book; 290 in all, the figure the captures README names."""


def loaded(parser: ParserBase, path: Path) -> list[tuple[str, int]]:
    """Feed the capture's REST answers to ``parser``; return its received frames."""
    frames = []
    for line in read_capture(path):
        if line.kind == "http":
            parser.on_http(line.url, line.data, line.ts_ns)
        elif line.kind == "recv":
            frames.append((line.data, line.ts_ns))
    return frames


def test_capture_replay_verifies_all_290_checksums() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "okx" and EXCHANGES["OKX"] == "okx"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    got = {s: v["checksums_verified"] for s, v in summary["symbols"].items()}
    assert got == VERIFIED and sum(got.values()) == 290
    for s in summary["symbols"].values():
        assert (s["checksums_failed"], s["gaps"], s["crossed"], s["resyncs"]) == (0, 0, 0, 0)
        assert s["live"] and s["snapshots"] == 1
    assert summary["symbols"]["BTC-USDT"]["trades"] == 69


def test_check_command_recognises_the_venue_from_the_header() -> None:
    out = check_capture(CAPTURE)
    summary = json.loads(out.stdout)
    assert summary["venue"] == "okx"
    assert sum(s["checksums_verified"] for s in summary["symbols"].values()) == 290


def test_instrument_metadata_and_exact_prices() -> None:
    parser = OkxParser()
    frames = loaded(parser, CAPTURE)
    tick, lot = parser.units_for("BTC-USDT")
    assert (tick.text, lot.text) == ("0.1", "0.00000001")
    assert (
        parser.units_for("UNI-USD-SWAP")[0].text,
        parser.units_for("BTC-USD-220527")[1].text,
    ) == (
        "0.001",
        "1",
    )
    future = parser.contracts["BTC-USD-220527"]
    assert (future.kind, future.value, future.currency, future.settle) == (
        "inverse",
        "100",
        "USD",
        "BTC",
    )
    assert future.expiry_ms > 0 and parser.contracts["UNI-USD-SWAP"].expiry_ms == 0
    assert "BTC-USDT" not in parser.contracts  # spot has no contract
    snap = next(json.loads(t) for t, _ in frames if '"snapshot"' in t and '"BTC-USD-220527"' in t)
    px, sz = snap["data"][0]["asks"][0][:2]
    assert (px, sz) == ("30238.8", "2")
    for text, ts in frames:
        parser.on_frame(text, ts)
        if '"snapshot"' in text and '"BTC-USD-220527"' in text:
            break
    assert parser.books["BTC-USD-220527"].book.depth(1, 1) == [(302388, 2)]
    assert parser.texts["BTC-USD-220527"].sides[1][302388] == "30238.8:2"


def test_corrupted_update_fails_its_checksum_then_the_next_snapshot_recovers() -> None:
    truth, parser = OkxParser(), OkxParser()
    frames = loaded(truth, CAPTURE)
    loaded(parser, CAPTURE)
    symbol = "UNI-USD-SWAP"
    at = [i for i, (t, _) in enumerate(frames) if '"update"' in t and symbol in t][10]
    for text, ts in frames[:at]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    bad = json.loads(frames[at][0])
    level = (bad["data"][0]["bids"] or bad["data"][0]["asks"])[0]
    level[1] = str(int(level[1]) + 1)  # one contract more than the venue has
    events = parser.on_frame(json.dumps(bad), frames[at][1])
    truth.on_frame(*frames[at])
    sync = parser.books[symbol]
    assert sync.stats.checksums_failed == 1 and not sync.live
    assert sync.stale_reason == "checksum"
    assert [e.state for e in events if isinstance(e, Status)] == ["stale"]
    assert parser.recover([symbol]) == [
        '{"op": "unsubscribe", "args": [{"channel": "books", "instId": "UNI-USD-SWAP"}]}',
        '{"op": "subscribe", "args": [{"channel": "books", "instId": "UNI-USD-SWAP"}]}',
    ]
    # The next update is dropped (the book waits for a snapshot), then OKX's answer to
    # the resubscribe: a snapshot of the venue's book, with its checksum.
    nxt = next(i for i in range(at + 1, len(frames)) if symbol in frames[i][0])
    for text, ts in frames[at + 1 : nxt + 1]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    assert sync.stats.updates == truth.books[symbol].stats.updates - 1  # the next: dropped
    events = parser.on_frame(snapshot_frame(truth, symbol), 0)
    assert sync.live and sync.stats.resynced == 1 and sync.stats.checksums_failed == 1
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    for text, ts in frames[nxt + 1 :]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    assert sync.stats.checksums_failed == 1 and sync.live
    assert sync.book.snapshot() == truth.books[symbol].book.snapshot()


def snapshot_frame(parser: OkxParser, symbol: str) -> str:
    """The book ``parser`` holds as OKX would send it on a resubscribe."""
    book = parser.books[symbol].book
    texts: TextBook = parser.texts[symbol]

    def rows(side: int) -> list[list[str]]:
        return [[*texts.sides[side][p].split(":"), "0", "1"] for p, _s in book.depth(side)]

    crc = texts.checksum(book, parser.units_for(symbol))
    data = {"asks": rows(1), "bids": rows(0), "ts": "1652459300000", "checksum": crc}
    arg = {"channel": "books", "instId": symbol}
    return json.dumps({"arg": arg, "action": "snapshot", "data": [data]})


def test_malformed_frames_are_refused_whole_with_a_reason() -> None:
    parser = OkxParser()
    frames = loaded(parser, CAPTURE)
    for text, ts in frames[:30]:
        parser.on_frame(text, ts)
    symbol = "BTC-USDT"
    sync = parser.books[symbol]
    before = sync.book.snapshot()
    update = json.loads(next(t for t, _ in frames[30:] if '"update"' in t and symbol in t))
    update["data"][0]["bids"].append(["30000.05", "1", "0", "1"])  # off the 0.1 tick
    events = parser.on_frame(json.dumps(update), 0)
    assert parser.malformed == 1 and parser.reasons == {"number": 1}
    assert "'30000.05' is not a multiple of '0.1'" in parser.errors[-1]
    assert sync.book.snapshot() == before and not sync.live  # nothing applied, resync asked
    assert [e.state for e in events if isinstance(e, Status)] == ["stale"]
    trade = '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1","sz":"1"}]}'
    assert parser.on_frame(trade, 0) == []
    assert parser.reasons == {"number": 1, "shape": 1} and "missing 'tradeId'" in parser.errors[-1]
    unknown = '{"arg":{"channel":"books","instId":"NOPE-X"},"action":"update","data":[]}'
    parser.on_frame(unknown, 0)
    assert parser.reasons["symbol"] == 1 and "NOPE-X, an unknown instrument" in parser.errors[-1]
    parser.on_frame('{"event":"error","code":"60012","msg":"Invalid request"}', 0)
    assert parser.reasons["venue"] == 1
    parser.on_frame("{not json", 0)
    assert parser.malformed == 5 and parser.reasons["json"] == 1
    assert parser.on_frame("pong", 0) == [] and parser.malformed == 5
    bad_rest = '{"code":"0","data":[{"instId":"A-B","tickSz":"0","lotSz":"1"}]}'
    parser.on_http("https://www.okx.com/api/v5/public/instruments?instType=SPOT", bad_rest, 0)
    assert parser.reasons["number"] == 2 and "A-B" not in parser.units
    # A books push whose channel name is damaged is no silently lost update: refused, and
    # its book resyncs (fuzz: "books" became another string and the book stayed live).
    while not parser.books[symbol].live:
        text, ts = frames.pop(0)
        parser.on_frame(text, ts)
    renamed = next(t for t, _ in frames if '"update"' in t and symbol in t)
    renamed = renamed.replace('"channel":"books"', '"channel":"books-x"')
    assert '"books-x"' in renamed
    events = parser.on_frame(renamed, 0)
    assert parser.reasons["shape"] == 2 and "unknown channel 'books-x'" in parser.errors[-1]
    assert not parser.books[symbol].live
    assert [e.state for e in events if isinstance(e, Status)] == ["stale"]
    ticker = '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"last":"1"}]}'
    assert parser.on_frame(ticker, 0) == [] and parser.reasons["shape"] == 2


def test_trades_are_normalised() -> None:
    parser = OkxParser()
    frames = loaded(parser, CAPTURE)
    trades = [e for t, ts in frames for e in parser.on_frame(t, ts) if isinstance(e, Trade)]
    assert len(trades) == 74
    first = next(t for t in trades if t.symbol == "BTC-USD-220527")
    assert (first.trade_id, first.price, first.size, first.side) == ("7849", 302188, 1, 0)
    assert first.ts_event == 1652459199958 * 1_000_000 and first.ts_recv > first.ts_event
    assert {t.side for t in trades} == {0, 1}


def test_subscribe_heartbeat_and_registry() -> None:
    parser = OkxParser()
    (message,) = parser.subscribe(["BTC-USDT"])
    assert json.loads(message) == {
        "op": "subscribe",
        "args": [
            {"channel": "books", "instId": "BTC-USDT"},
            {"channel": "trades", "instId": "BTC-USDT"},
        ],
    }
    assert parser.heartbeat() == ["ping"] and 0 < parser.heartbeat_s < 30
    spec = VENUES["okx"]
    assert (spec.url, spec.rest) == ("wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com")
    assert parser.instrument_urls(spec.rest)[0] == (
        "https://www.okx.com/api/v5/public/instruments?instType=SPOT"
    )


def replayed_books(path: Path, parser: ParserBase) -> dict[str, Any]:
    for _ts, _events in capture_batches(path, parser):
        pass
    return {s: sync.book.snapshot() for s, sync in parser.books.items()}


async def test_live_runner_over_a_mock_venue_ends_with_the_replays_books() -> None:
    symbols = list(VERIFIED)
    runner, books, mock = await runner_against_capture(CAPTURE, OkxParser, symbols, 0.01)
    assert runner.frames == len(mock.frames) and runner.connections == 1
    assert mock.received[1] == "ping"  # the keep-alive, after the subscribe
    assert sorted(p.split("?")[1] for p in mock.rest_requests) == [
        "instType=FUTURES",
        "instType=SPOT",
        "instType=SWAP",
    ]
    assert json.loads(mock.received[0]) == json.loads(OkxParser().subscribe(symbols)[0])
    parser = runner.parser
    assert parser.malformed == 0
    assert sum(s.stats.checksums_ok for s in parser.books.values()) == 290
    expected = replayed_books(CAPTURE, OkxParser())
    assert {s: b.snapshot() for s, b in books.books.items()} == expected
    assert set(expected) == set(symbols)


def test_seq_ids_of_the_current_api_reveal_a_gap_at_once() -> None:
    parser = OkxParser()
    frames = loaded(parser, CAPTURE)
    symbol = "UNI-USD-SWAP"
    mine = [json.loads(t) for t, _ in frames if '"books"' in t and symbol in t and "data" in t]
    numbers = [(-1, 100), (100, 105), (105, 105), (105, 90)]  # seqId kept, then a restart
    for msg, (prev, seq) in zip(mine, numbers, strict=False):
        msg["data"][0].update(prevSeqId=prev, seqId=seq)
        parser.on_frame(json.dumps(msg), 0)
    sync = parser.books[symbol]
    assert sync.live and sync.stats.checksums_ok == 4 and sync.stats.gaps == 0
    assert parser.seq_ids[symbol] == 90
    lost = mine[5]
    lost["data"][0].update(prevSeqId=95, seqId=99)  # 90 was the last: one message lost
    events = parser.on_frame(json.dumps(lost), 0)
    assert (sync.stats.gaps, sync.stats.checksums_failed, sync.live) == (1, 0, False)
    assert [(e.state, e.reason) for e in events if isinstance(e, Status)] == [("stale", "gap")]


@functools.cache
def fuzz_case() -> Case:
    return Case("okx", capture_items(CAPTURE), OkxParser, 20, 330, chained=False)


@fuzzed
def test_mutated_frames_never_raise_and_books_stay_exact_or_stale(data: st.DataObject) -> None:
    """The harness of test_fuzz_venues on this venue's capture (REST answers and frames)."""
    fuzz_case().fuzz(data)


async def kafka_books(
    bootstrap: str, topic: str, want: dict[str, Any], wait_s: float = 60
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Rebuild every symbol's book from the Kafka book topic until they equal ``want`` (or
    ``wait_s`` passes)."""
    c = consumer(KafkaConfig(bootstrap=bootstrap), topic, group=None)
    await start_consumer(KafkaConfig(bootstrap=bootstrap), c)
    books: dict[str, L2Book] = {}
    seqs: dict[str, list[int]] = {}
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=500)).values():
                for r in records:
                    e = decode(r.value)
                    if isinstance(e, BookUpdate):
                        seqs.setdefault(e.symbol, []).append(e.seq)
                        books.setdefault(e.symbol, L2Book()).apply(e.changes)
            if {s: b.snapshot() for s, b in books.items()} == want:
                break
    finally:
        await c.stop()
    return {s: b.snapshot() for s, b in books.items()}, seqs


@pytest.mark.services
def test_hub_feed_through_kafka_ends_with_the_replays_books(
    hub_process: Any, unique: str, services: dict[str, str]
) -> None:
    """``hub feed --source okx`` as a real process against the capture played back by a mock
    venue, publishing to the real Kafka: the published updates rebuild the replay's books."""
    thread = VenueThread(MockCaptureVenue(CAPTURE))  # type: ignore[arg-type]
    port = thread.start()
    try:
        hub_process(
            "feed",
            "--source",
            "okx",
            "--url",
            f"ws://127.0.0.1:{port}",
            "--rest-url",
            f"http://127.0.0.1:{port}",
            "--symbols",
            ",".join(VERIFIED),
            "--metrics-port",
            "0",
            env=stack_env(services, unique),
        )
        thread.wait_done(60)
        want = replayed_books(CAPTURE, OkxParser())
        seen, seqs = asyncio.run(kafka_books(services["kafka"], f"{unique}.book", want))
    finally:
        thread.stop()
    assert seen == want
    for symbol in VERIFIED:
        assert seqs[symbol] == list(range(1, len(seqs[symbol]) + 1)), "gap-free per symbol"
