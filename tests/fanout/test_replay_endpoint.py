"""The fanout node's ``/replay`` endpoint over real WebSocket connections, on the files
``hub sample`` writes: two sources merged in event time, books that a client mirror
rebuilds exactly (every checksum verified) and that equal the readers' own final books,
time ranges that start with a snapshot of the book at ``from``, pacing, refusals that name
what was wrong, the concurrency bound, and a client that leaves mid-replay."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app.files import replay_opener
from bus.local import MemorySnapshots
from client.market import BookMirror
from client.replay import ReplayClient, ReplayError
from client.subscribe import watch_replay
from fanout.node import FanoutNode
from fanout.replay import ReplayRequest, replay_request
from feedhandler.files.itch import replay_itch
from feedhandler.files.replay import capture_batches
from feedhandler.files.sample import write_samples
from feedhandler.files.sources import event_time, open_sources
from feedhandler.venues import VENUES
from hub.config import FanoutConfig
from hub.errors import BadInput, ConfigError
from hub.events import BookUpdate, Instrument, Trade
from hub.ops import bound_port
from orderbook_core import L2Book

GEMINI = "gemini-sample_l2-trades_2019-12-30.jsonl.zst"
ITCH = "12302019.NASDAQ_ITCH50.gz"
KEY = "replay-key-0123456789abcdef-0123456789"
BOTH = f"capture:{GEMINI},itch:{ITCH}"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder, 1)
    return folder


@asynccontextmanager
async def node_for(folder: Path, **cfg: Any) -> AsyncIterator[tuple[FanoutNode, str]]:
    config = FanoutConfig(port=0, anonymous=True, replay_dirs=(str(folder),), **cfg)
    node = FanoutNode(config, MemorySnapshots())
    node.replays.opener = replay_opener(config)
    server = await node.start()
    try:
        yield node, f"ws://127.0.0.1:{bound_port(server)}/replay"
    finally:
        await node.stop()


async def messages(
    url: str, first: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], Any]:
    """Every message of a replay until the node closes the connection, and the close."""
    out: list[dict[str, Any]] = []
    async with websockets.connect(url, max_size=None) as ws:
        if first is not None:
            await ws.send(json.dumps(first))
        with contextlib.suppress(ConnectionClosed):  # a refusal's close is not 1000
            async for data in ws:
                frame = json.loads(data)
                out.extend(frame if isinstance(frame, list) else [frame])
    return out, (ws.close_code, ws.close_reason)


def mirrors(msgs: list[dict[str, Any]]) -> dict[tuple[str, str], BookMirror]:
    """Each stream's book as a client rebuilds it (raises on a gap or a wrong checksum)."""
    units: dict[tuple[str, str], tuple[str, str]] = {}
    books: dict[tuple[str, str], BookMirror] = {}
    for m in msgs:
        key = (m.get("venue", ""), m.get("symbol", ""))
        if m["type"] == "instrument":
            units[key] = (m["tick_size"], m["lot_size"])
        elif m["type"] in ("snapshot", "book"):
            assert key in units, f"{key}: a book message before its instrument"
            if m["type"] == "snapshot":
                books[key] = BookMirror(*units[key])
            assert books[key].apply(m)
    return books


def reference_books(folder: Path) -> dict[tuple[str, str], tuple[list[Any], list[Any]]]:
    """The readers' own final books: the Gemini parser's, and ITCH's order books."""
    parser = VENUES["gemini"].parser()
    for _batch in capture_batches(folder / GEMINI, parser):
        pass
    out = {("GEMINI", s): sync.book.snapshot() for s, sync in parser.books.items()}
    itch = replay_itch(folder / ITCH)
    for symbol in itch.symbols():
        bids, asks = itch.book(symbol).snapshot()  # levels with their order counts
        out["ITCH", symbol] = ([(p, q) for p, q, _n in bids], [(p, q) for p, q, _n in asks])
    return out


def test_two_sources_merge_in_event_time_and_every_book_ends_exact(samples: Path) -> None:
    async def run() -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
        async with node_for(samples) as (node, url):
            msgs, close = await messages(f"{url}?sources={BOTH}")
            for _ in range(200):  # the node's side of the close may still be running
                if node.replays.served:
                    break
                await asyncio.sleep(0.01)
            return msgs, close, node.health()["replays"]

    msgs, close, health = asyncio.run(run())
    assert close == (1000, "replay ended")
    assert msgs[0]["type"] == "replay" and msgs[0]["state"] == "playing"
    assert msgs[0]["sources"] == [f"capture:{GEMINI}", f"itch:{ITCH}"]
    assert msgs[-1]["type"] == "replay" and msgs[-1]["state"] == "ended"
    assert msgs[-1]["messages"] == len(msgs) - 1  # every message after ``playing``
    # merged in event time (the receive time where the venue stamps none: Gemini's books)
    times = [m["ts_event"] or m["ts_recv"] for m in msgs if m["type"] in ("book", "trade")]
    assert times == sorted(times)
    assert msgs[-1]["clock"] == times[-1]
    venues = {m["venue"] for m in msgs if m["type"] == "trade"}
    assert venues == {"GEMINI", "ITCH"}
    books = mirrors(msgs)
    reference = reference_books(samples)
    assert set(books) == set(reference)
    for key, book in books.items():
        assert (book.depth(0), book.depth(1)) == tuple(map(list, reference[key])), key
        assert book.checksums == book.snapshots + book.updates  # every one verified
    trades = [m for m in msgs if m["type"] == "trade"]
    read = list(open_sources([f"itch:{ITCH}"], roots=[samples]))
    itch_trades = [(t.seq, t.trade_id) for t in read if isinstance(t, Trade)]
    assert [(t["seq"], t["trade_id"]) for t in trades if t["venue"] == "ITCH"] == itch_trades
    closed = {
        (m["venue"], m["symbol"]) for m in msgs if m["type"] == "status" and m["state"] == "closed"
    }
    assert closed == set(reference)
    assert health == {"playing": 0, "served": 1, "max": 4}


def test_a_range_starts_with_the_book_at_from_and_sends_nothing_outside(samples: Path) -> None:
    events = list(open_sources([f"capture:{GEMINI}"], roots=[samples]))
    stamped = sorted({event_time(e) for e in events if isinstance(e, BookUpdate | Trade)})
    start, end = stamped[len(stamped) // 3], stamped[2 * len(stamped) // 3]
    # The book of BTCUSD as of each seq, rebuilt from the events themselves.
    book, at_seq = L2Book(), {}
    for e in events:
        if isinstance(e, BookUpdate) and e.symbol == "BTCUSD":
            book.apply(e.changes)
            at_seq[e.seq] = book.snapshot()

    async def run() -> list[dict[str, Any]]:
        async with node_for(samples) as (_node, url):
            query = f"sources=capture:{GEMINI}&from={start}&to={end}&symbols=btc-usd"
            return (await messages(f"{url}?{query}"))[0]

    msgs = asyncio.run(run())
    body = [m for m in msgs if m["type"] in ("snapshot", "book", "trade")]
    assert body and {m["symbol"] for m in body} == {"BTCUSD"}  # by its canonical id
    assert all(start <= (m["ts_event"] or m["ts_recv"]) <= end for m in body if "ts_recv" in m)
    first_book = next(m for m in body if m["type"] in ("snapshot", "book"))
    assert first_book["type"] == "snapshot" and first_book["reason"] == "replay"
    mirror = mirrors(msgs)["GEMINI", "BTCUSD"]
    assert mirror.seq is not None
    assert (mirror.depth(0), mirror.depth(1)) == tuple(map(list, at_seq[mirror.seq]))
    snap = BookMirror("0.01", "0.000001")
    snap.apply(first_book)
    assert (snap.depth(0), snap.depth(1)) == tuple(map(list, at_seq[first_book["seq"]]))
    assert msgs[-1]["clock"] <= end


def test_a_paced_replay_takes_its_recorded_time_over_the_speed(samples: Path) -> None:
    events = list(open_sources([f"capture:{GEMINI}"], roots=[samples]))
    stamped = sorted({event_time(e) for e in events if isinstance(e, BookUpdate)})
    start = stamped[0]
    end = next(t for t in stamped if t - start >= 2_000_000_000)  # 2 s of recorded time

    async def run() -> tuple[float, list[dict[str, Any]]]:
        async with node_for(samples) as (_node, url):
            began = time.monotonic()
            msgs, _ = await messages(
                f"{url}?sources=capture:{GEMINI}&from={start}&to={end}&speed=4"
            )
            return time.monotonic() - began, msgs

    took, msgs = asyncio.run(run())
    assert msgs[0]["speed"] == 4.0
    recorded = (msgs[-1]["clock"] - start) / 1e9
    assert recorded >= 2.0 and took >= recorded / 4 * 0.9  # paced, not as fast as possible


def test_the_request_may_come_as_the_first_message(samples: Path) -> None:
    async def run() -> list[dict[str, Any]]:
        async with node_for(samples) as (_node, url):
            ask = {
                "op": "replay",
                "sources": [f"itch:{ITCH}"],
                "channels": ["trades"],
                "speed": "max",
            }
            return (await messages(url, ask))[0]

    msgs = asyncio.run(run())
    kinds = {m["type"] for m in msgs}
    assert kinds == {"replay", "instrument", "trade"}  # trades only: no book, no status


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("sources=capture:../secret.jsonl", "not a path"),
        ("sources=capture:/etc/passwd", "not a path"),
        ("sources=capture:nope.jsonl.zst", "no such file"),
        ("sources=csv:x.csv", "KIND one of capture"),
        (f"sources=itch:{ITCH}&speed=0", "speed 0.0"),
        (f"sources=itch:{ITCH}&speed=fast", "speed:"),
        (f"sources=itch:{ITCH}&channels=bbo", "channel 'bbo'"),
        (f"sources=itch:{ITCH}&from=2019-12-31T00:00:00Z&to=2019-12-30T00:00:00Z", "before from"),
        (f"sources=itch:{ITCH}&from=yesterday", "from 'yesterday'"),
        (f"sources=itch:{ITCH}&depth=5", "unknown replay field 'depth'"),
    ],
)
def test_bad_requests_are_refused_naming_what_is_wrong(
    samples: Path, query: str, named: str
) -> None:
    async def run() -> tuple[list[dict[str, Any]], Any]:
        async with node_for(samples) as (_node, url):
            return await messages(f"{url}?{query}")

    msgs, close = asyncio.run(run())
    assert len(msgs) == 1 and msgs[0]["type"] == "error" and msgs[0]["code"] == "bad_request"
    assert named in msgs[0]["message"]
    assert "sources" in msgs[0]["request"]  # the request it refused, echoed
    assert close[0] == 1008


def test_the_node_plays_at_most_max_replays_and_a_leaving_client_frees_its_slot(
    samples: Path,
) -> None:
    async def run() -> tuple[list[dict[str, Any]], Any, dict[str, Any], list[dict[str, Any]]]:
        async with node_for(samples, max_replays=1) as (node, url):
            slow = await websockets.connect(f"{url}?sources=capture:{GEMINI}&speed=0.001")
            await slow.recv()  # playing
            busy, close = await messages(f"{url}?sources=itch:{ITCH}")
            playing = node.health()["replays"]
            await slow.close()
            for _ in range(200):
                if node.replays.active == 0:
                    break
                await asyncio.sleep(0.01)
            again, _ = await messages(f"{url}?sources=itch:{ITCH}&channels=status")
            return busy, close, playing, again

    busy, close, playing, again = asyncio.run(run())
    assert busy[0]["code"] == "too_many_replays" and close[0] == 1013
    assert playing == {"playing": 1, "served": 0, "max": 1}
    assert again[-1]["state"] == "ended"


def test_a_node_with_keys_wants_a_credential_and_one_without_folders_replays_nothing(
    samples: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[key]]\nid = "k1"\nkey = "{KEY}"\nchannels = ["trades"]\n')

    async def run() -> tuple[Any, ...]:
        cfg = FanoutConfig(port=0, keys=str(keys), replay_dirs=(str(samples),))
        node = FanoutNode(cfg, MemorySnapshots())
        node.replays.opener = replay_opener(cfg)
        server = await node.start()
        url = f"ws://127.0.0.1:{bound_port(server)}/replay?sources=itch:{ITCH}"
        try:
            none, _ = await messages(url)
            denied, _ = await messages(f"{url}&token={KEY}")
            allowed, _ = await messages(f"{url}&token={KEY}&channels=trades")
        finally:
            await node.stop()
        bare = FanoutNode(replace(cfg, keys="", anonymous=True, replay_dirs=()), MemorySnapshots())
        bare.replays.opener = replay_opener(bare.cfg)
        server = await bare.start()
        try:
            off, _ = await messages(
                f"ws://127.0.0.1:{bound_port(server)}/replay?sources=itch:{ITCH}"
            )
        finally:
            await bare.stop()
        return none, denied, allowed, off

    none, denied, allowed, off = asyncio.run(run())
    assert none[0]["code"] == "unauthenticated"
    assert denied[0]["code"] == "bad_request" and "not allowed for this key" in denied[0]["message"]
    assert allowed[-1]["state"] == "ended" and any(m["type"] == "trade" for m in allowed)
    assert off[0]["code"] == "unavailable"


def test_requests_parse_from_a_query_or_a_message() -> None:
    assert replay_request(
        {"sources": "itch:a,capture:b", "speed": "2.5", "from": "5"}
    ) == ReplayRequest(("itch:a", "capture:b"), 5, None, 2.5)
    msg = {"op": "replay", "sources": ["itch:a"], "from": "2019-12-30T14:30:00.5Z", "speed": 10}
    req = replay_request(msg)
    assert req.start_ns == 1_577_716_200_500_000_000 and req.speed == 10.0
    assert req.describe()["speed"] == 10.0 and replay_request({"sources": "itch:a"}).speed is None
    with pytest.raises(BadInput, match="sources"):
        replay_request({"speed": 1})
    with pytest.raises(BadInput, match="at most 16"):
        replay_request({"sources": [f"itch:{i}" for i in range(17)]})


def test_a_large_itch_file_needs_its_stocks_named(samples: Path, tmp_path: Path) -> None:
    big = tmp_path / "01022020.NASDAQ_ITCH50"
    with big.open("wb") as f:  # sparse: its size is what counts
        f.truncate(65 * 2**20)
    opener = replay_opener(FanoutConfig(replay_dirs=(str(tmp_path),)))
    assert opener is not None
    with pytest.raises(BadInput, match="65 MiB of ITCH; name the stocks"):
        opener([f"itch:{big.name}"], [])
    opener([f"itch:{big.name}"], ["AAPL"])  # named: nothing is read before the replay


def test_replay_settings_are_checked_at_start(tmp_path: Path) -> None:
    assert replay_opener(FanoutConfig()) is None
    with pytest.raises(ConfigError, match="is not a folder"):
        replay_opener(FanoutConfig(replay_dirs=(str(tmp_path / "none"),)))
    with pytest.raises(ConfigError, match="max_replays must be 1 to 1000"):
        replay_opener(FanoutConfig(max_replays=0))


def test_an_instrument_always_comes_before_its_streams_first_event(samples: Path) -> None:
    seen: set[tuple[str, str]] = set()
    for e in open_sources([BOTH.split(",")[0], BOTH.split(",")[1]], roots=[samples]):
        key = (e.venue, e.symbol)
        if isinstance(e, Instrument):
            seen.add(key)
        else:
            assert key in seen, key


def test_the_replay_client_mirrors_every_book_and_hub_subscribe_prints_it(samples: Path) -> None:
    async def run() -> tuple[ReplayClient, str, int, str]:
        async with node_for(samples) as (_node, url):
            async with ReplayClient(url.replace("/replay", "/ws"), BOTH.split(",")) as replay:
                async for _msg in replay.messages():
                    pass
            out = io.StringIO()
            rc = await watch_replay(
                url, [f"capture:{GEMINI}"], "btc-usd", ["book", "trades"], None, None, "max",
                None, 0, out,
            )  # fmt: skip
            with contextlib.suppress(ReplayError):
                async with ReplayClient(url, ["capture:../x"]) as bad:
                    async for _msg in bad.messages():
                        pass
            return replay, out.getvalue(), rc, str(bad.ended)

    replay, printed, rc, bad_ended = asyncio.run(run())
    reference = reference_books(samples)
    assert {k: (b.depth(0), b.depth(1)) for k, b in replay.books.items()} == {
        k: tuple(map(list, v)) for k, v in reference.items()
    }
    assert replay.ended is not None and replay.clock == replay.ended["clock"]
    lines = printed.splitlines()
    assert lines[0].startswith("replay playing: capture:gemini-sample")
    assert lines[1] == "instrument GEMINI BTCUSD (BTC-USD) tick 0.01 lot 0.000001"
    assert lines[-1].startswith("replay ended at ") and rc == 0
    assert all("checksum ok" in ln for ln in lines if ln.startswith(("snapshot", "book")))
    assert any(ln.startswith("trade #") for ln in lines)
    assert bad_ended == "None"
