"""Every venue with a capture, end to end through the real processes and services:

mock venue (the capture over a real WebSocket, its REST answers over HTTP) → ``hub feed
--source VENUE`` → Kafka (snapshots in Redis) → one shared ``hub fanout`` node →
``client.market.HubClient`` subscribed to ``book`` (with checksums) and ``trades`` of every
symbol of the capture.

The mock venue holds the recording once every symbol's book has synced (the point is found
by replaying the capture through the venue's parser, then moved on by steps while the node
does not list every book yet) until the client has every book's snapshot, so the rest of
the recording reaches the client as live deltas and trades. Each client book must end
equal to the replay's book (compared in the stream's integer units), with every seq range
and checksum verified by the client's mirror and one snapshot per book (no resync on the
way), and the trades must arrive in seq order up to the replay's last one. Venues without
a capture (Bybit v5, Binance USD-M) play a recording of their documented messages; the
Coinbase full channel, which has neither here, is skipped, named with the reason.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.market import BookMirror, ChecksumMismatch, HubClient, SequenceGap
from feedhandler.files.capture import read_capture
from feedhandler.venues import VENUES
from hub.events import BookUpdate, Trade
from testing.mock_venue import MockCaptureVenue
from tests.conftest import HubProcess, stack_env
from tests.feedhandler.venues import (
    test_binance,
    test_binance_futures,
    test_bitfinex,
    test_bitget,
    test_bitmex,
    test_bitstamp,
    test_bybit,
    test_bybit_v5,
    test_coinbase,
    test_cryptocom,
    test_deribit,
    test_gateio,
    test_gemini,
    test_huobi,
    test_kraken,
    test_kraken_futures,
    test_kucoin,
    test_okx,
    test_phemex,
)
from tests.test_live_feed import VenueThread

pytestmark = pytest.mark.services

WAIT_S = 60.0
"""A bound for a hang, not a timing: how long a venue's client may take to converge."""
STEPS = 40
"""A venue held before every book is listed goes on by 1/STEPS of its frames at a time."""
STEP_S = 0.1
"""How long the feed and the node get to list the books after each step."""
PING_S = 0.25
"""The client's pings: their answers wake the reader up once the stream has ended."""


Recording = Path | Callable[[Path], Path]
"""A capture, or a function that writes a recording of documented traffic (for a venue
with no capture) to the path it is given and returns it."""


def _case(venue: str, capture: Recording | None, skip: str = "") -> Any:
    marks = [pytest.mark.skip(reason=skip)] if skip else []
    return pytest.param(venue, capture, id=venue, marks=marks)


CASES = [
    _case("kraken", test_kraken.V2),
    _case("binance", test_binance.CAPTURE),
    _case("coinbase", test_coinbase.ADVANCED),
    _case("coinbase-exchange", test_coinbase.EXCHANGE),
    _case("coinbase-l3", None, "no capture of the full channel (tests use a simulated venue)"),
    _case("bybit-v2", test_bybit.CAPTURE),
    _case("bybit", test_bybit_v5.capture),  # no v5 capture: the documented messages
    _case("bitmex", test_bitmex.CAPTURE),
    _case("okx", test_okx.CAPTURE),
    _case("bitget", test_bitget.CAPTURE),
    _case("binance-coinm", test_binance_futures.CAPTURE),
    _case("binance-usdm", test_binance_futures.usdm_capture),  # no capture: documented
    _case("kraken-futures", test_kraken_futures.CAPTURE),
    _case("deribit", test_deribit.CAPTURE),
    _case("bitfinex", test_bitfinex.CAPTURE),
    _case("bitstamp", test_bitstamp.CAPTURE),
    _case("gemini", test_gemini.CAPTURE),
    _case("huobi", test_huobi.SPOT),
    _case("huobi-coin-swap", test_huobi.SWAP),
    _case("cryptocom", test_cryptocom.CAPTURE),
    _case("phemex", test_phemex.CAPTURE),
    _case("kucoin", test_kucoin.CAPTURE),
    _case("gateio", test_gateio.CAPTURE),
]


@dataclass
class Replayed:
    """What the venue's parser makes of the capture: final books as decimal strings, the
    last trade seq per symbol, the frame after which every book has synced, and the frame
    (counted from 1) each book update came in."""

    books: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]
    last_trade: dict[str, int]
    hold_after: int | None
    update_frames: list[int]
    venue: str


def replayed(venue: str, path: Path) -> Replayed:
    """The capture through the venue's parser, line by line as ``capture_batches`` does."""
    parser = VENUES[venue].parser()
    frames = 0
    synced: dict[str, int] = {}  # symbol -> frames received when its first update came
    after: list[Any] = []  # (frames received, event) of every book update and trade
    name = ""
    for line in read_capture(path):
        if line.kind == "send":
            parser.on_sent(line.data)
            continue
        if line.kind == "http":
            events = parser.on_http(line.url, line.data, line.ts_ns)
        elif line.kind == "recv":
            events = parser.on_frame(line.raw or line.data, line.ts_ns)
            frames += 1
        else:
            continue
        for e in events:
            if isinstance(e, BookUpdate | Trade):
                name = e.venue
                after.append((frames, e))
            if isinstance(e, BookUpdate):
                synced.setdefault(e.symbol, frames)
    books = {}
    for symbol, sync in parser.books.items():
        tick, lot = parser.units_for(symbol)
        bids, asks = sync.book.snapshot()
        books[symbol] = (
            [(tick.to_str(p), lot.to_str(s)) for p, s in bids],
            [(tick.to_str(p), lot.to_str(s)) for p, s in asks],
        )
    last_trade: dict[str, int] = {}
    for _n, e in after:
        if isinstance(e, Trade):
            last_trade[e.symbol] = max(last_trade.get(e.symbol, 0), e.seq)
    # One frame past the last first sync: a venue whose books sync from REST answers
    # gets the frame that bridges its snapshot before the hold.
    hold = max(synced.values(), default=0) + 1
    hold_after = hold if hold < frames else None
    updates = [n for n, e in after if isinstance(e, BookUpdate)]
    return Replayed(books, last_trade, hold_after, updates, name)


@dataclass
class Node:
    url: str
    env: dict[str, str]
    log_dir: Path


@pytest.fixture(scope="module")
def node(services: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One ``hub fanout`` for every venue: one topic and key prefix, the venues' streams
    told apart by their venue names."""
    log_dir = tmp_path_factory.mktemp("venues-e2e")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = stack_env(services, prefix)
    fanout = HubProcess(
        ["fanout", "--port", "0"],
        {**os.environ, **env, "HUB_FANOUT__ANONYMOUS": "true"},
        log_dir,
    )
    try:
        port = int(fanout.wait_for(r"serving ws://127.0.0.1:(\d+)/ws").group(1))
        yield Node(f"ws://127.0.0.1:{port}/ws", env, log_dir)
    finally:
        fanout.stop()


@dataclass
class Seen:
    """What the client got: its mirrors, the trade seqs per symbol, and how many frames
    the venue had let go when it subscribed (None: all of them)."""

    mirrors: dict[str, BookMirror]
    trades: dict[str, list[int]]
    sent_at_subscribe: int | None
    error: str = ""


def _expected_units(
    mirror: BookMirror, book: tuple[list[tuple[str, str]], list[tuple[str, str]]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The replay's book in the stream's integer units (the mirror's)."""
    bids, asks = book
    return (
        [(mirror.tick.to_units(p), mirror.lot.to_units(s)) for p, s in bids],
        [(mirror.tick.to_units(p), mirror.lot.to_units(s)) for p, s in asks],
    )


async def follow(
    url: str, venue: str, want: Replayed, thread: VenueThread, mock: MockCaptureVenue
) -> Seen:
    """Wait until the node lists every symbol of the venue (letting the held venue go on
    by steps while some are missing: a book that syncs from a REST snapshot fetched on the
    runner's stale check may need more frames than the replay did), subscribe to each book
    (checksummed) and trades, let the venue play the rest once every book has its
    snapshot, and read until every book equals the replay's and the last trade of each
    symbol has arrived."""
    symbols = sorted(want.books)
    name = want.venue
    loop = thread.loop
    limit = want.hold_after
    step = max(1, len(mock.frames) // STEPS)

    def allow(frames: int | None) -> None:
        loop.call_soon_threadsafe(mock.allow, frames)

    async with HubClient(url, ping_s=PING_S, reconnect=False) as client:
        start = time.monotonic()
        while True:
            listed = (await client.request({"op": "list"}, "streams"))["streams"]
            for s in listed:
                client.streams[s["venue"], s["symbol"]] = s
            have = {s["symbol"] for s in listed if s["venue"] == name and s["tick_size"]}
            if set(symbols) <= have:
                break
            assert time.monotonic() - start < WAIT_S, f"never listed: {set(symbols) - have}"
            if limit is not None and mock.held.is_set():
                limit = limit + step if limit + step < len(mock.frames) else None
                allow(limit)
            await asyncio.sleep(STEP_S)
        channels = [
            item
            for s in symbols
            for item in (
                {"channel": "book", "venue": name, "symbol": s, "checksum": True},
                {"channel": "trades", "venue": name, "symbol": s},
            )
        ]
        answer = await client.subscribe(channels)
        assert answer["refused"] == [], answer["refused"]
        mirrors = {s: client.books[name, s] for s in symbols}
        expected: dict[str, Any] = {}
        trades: dict[str, list[int]] = {s: [] for s in symbols}
        matched: set[str] = set()
        dirty = set(symbols)  # books changed since they were last compared
        seen = Seen(mirrors, trades, limit)
        released = limit is None

        def compare() -> None:
            """Once the venue has sent everything: compare the books that changed."""
            for symbol in dirty:
                mirror = mirrors[symbol]
                if symbol not in expected:
                    expected[symbol] = _expected_units(mirror, want.books[symbol])
                if (mirror.depth(0), mirror.depth(1)) == expected[symbol]:
                    matched.add(symbol)
                else:
                    matched.discard(symbol)
            dirty.clear()

        def done() -> bool:
            return matched == set(symbols) and all(
                (trades[s][-1] if trades[s] else 0) >= last for s, last in want.last_trade.items()
            )

        async def read() -> None:
            nonlocal released
            async for msg in client.messages():  # the client's pings wake it up meanwhile
                symbol = msg.get("symbol")
                if msg.get("venue") == name and symbol in mirrors:
                    if msg["type"] == "trade":
                        trades[symbol].append(msg["seq"])
                    elif msg["type"] in ("snapshot", "book"):
                        dirty.add(symbol)
                if not released and all(m.seq is not None for m in mirrors.values()):
                    released = True
                    allow(None)  # every book has its snapshot: the rest comes as deltas
                if mock.done.is_set():
                    compare()
                    if done():
                        return

        try:
            await asyncio.wait_for(read(), WAIT_S)
        except (SequenceGap, ChecksumMismatch) as exc:
            seen.error = f"{type(exc).__name__}: {exc}"
        except TimeoutError:
            last = {s: t[-1] for s, t in trades.items() if t}
            seen.error = (
                f"timed out; books matched: {sorted(matched)} of {symbols}; "
                f"last trades {last}, the replay's {want.last_trade}"
            )
        return seen


@pytest.mark.parametrize(("venue", "capture"), CASES)
def test_venue_feed_through_kafka_and_a_node_ends_with_the_replays_books_at_the_client(
    venue: str, capture: Recording, node: Node, tmp_path: Path
) -> None:
    if not isinstance(capture, Path):
        capture = capture(tmp_path / f"{venue}.jsonl")
    want = replayed(venue, capture)
    tokens = bool(VENUES[venue].parser().token_url("http://x"))
    mock = MockCaptureVenue(capture, hold_after=want.hold_after, tokens=tokens)
    thread = VenueThread(mock)  # type: ignore[arg-type]
    port = thread.start()
    # A venue that hands out connect tokens (KuCoin) is told no WebSocket address: the
    # feed connects where the token's answer says.
    url = [] if tokens else ["--url", f"ws://127.0.0.1:{port}"]
    feed = HubProcess(
        [
            "feed",
            "--source",
            venue,
            *url,
            "--rest-url",
            f"http://127.0.0.1:{mock.rest_port}",
            "--symbols",
            ",".join(sorted(want.books)),
            "--metrics-port",
            "0",
        ],
        {**os.environ, **node.env},
        node.log_dir,
    )
    try:
        seen = asyncio.run(follow(node.url, venue, want, thread, mock))
    finally:
        feed.stop()
        thread.stop()
        thread.loop.close()
    assert not seen.error, f"{seen.error}\nfeed stderr:\n{feed.stderr()}"
    assert mock.refused == 0 and mock.connections >= 1
    for symbol, mirror in seen.mirrors.items():
        assert _expected_units(mirror, want.books[symbol]) == (mirror.depth(0), mirror.depth(1))
        assert mirror.checksums >= 1 and not mirror.crossed(), symbol
        assert mirror.snapshots == 1, f"{symbol}: resynced {mirror.snapshots - 1} times"
    for symbol, last in want.last_trade.items():
        got = seen.trades[symbol]
        assert got and got[-1] == last, f"{symbol}: trades {got[-5:]}, the replay's last {last}"
        assert got == list(range(got[0], last + 1)), f"{symbol}: trade seqs not contiguous"
    sent = seen.sent_at_subscribe
    if sent is not None and any(n > sent for n in want.update_frames):
        assert sum(m.updates for m in seen.mirrors.values()) > 0, "no live deltas reached it"
