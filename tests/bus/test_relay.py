"""The demo feed's relay to its fanout workers (bus.relay), over a real Unix socket.

A worker gets what the store holds, a mark that it is all sent (its node then knows
every stream), then every write in the order the feed made it;
a live source never waits and a worker far behind is cut; a self-paced source waits
for its workers and cuts one that takes nothing; the frame reader refuses a header no
frame can have, naming the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import relay as relay_module
from bus.local import MemorySnapshots
from bus.relay import EVENT, HEADER, HELD, METRICS, STORE, Frames, Relay, RelayError, frame
from fanout.node import FanoutNode
from fanout.sources import relay_source
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Event, Instrument, Trade, decode, encode

INSTRUMENT = Instrument("SIM", "BTC-USD", "0.01", "0.0001")


def cuts() -> float:
    return METRICS.get_sample_value("hub_relay_cut_total") or 0.0


def snapshot(seq: int) -> BookSnapshot:
    return BookSnapshot("SIM", "BTC-USD", seq, seq, ((100 + seq, 5),), ((200, 7),), epoch=9)


def update(seq: int) -> BookUpdate:
    return BookUpdate("SIM", "BTC-USD", seq, seq, seq, ((0, 100 + seq, 5),), epoch=9)


def decoded(frames: list[tuple[int, bytes]]) -> list[tuple[int, Event | None]]:
    return [(kind, None if kind == HELD else decode(payload)) for kind, payload in frames]


async def read_frames(
    reader: asyncio.StreamReader, path: Path, count: int
) -> list[tuple[int, Event | None]]:
    frames = Frames(path)
    out: list[tuple[int, Event | None]] = []
    while len(out) < count:
        chunk = await asyncio.wait_for(reader.read(7), 10)  # small reads: frames split anywhere
        assert chunk, f"stream ended after {len(out)} frames"
        out.extend(decoded(frames.feed(chunk)))
    return out


async def started(tmp_path: Path, **kwargs: int) -> AsyncIterator[Relay]:
    relay = Relay(tmp_path / "relay.sock", **kwargs)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


async def connected(relay: Relay, workers: int = 1) -> None:
    for _ in range(500):
        if relay.workers == workers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{relay.workers} workers connected, not {workers}")


def test_a_worker_gets_the_store_first_then_every_write_in_order(tmp_path: Path) -> None:
    async def run() -> None:
        async for relay in started(tmp_path):
            await relay.put_instrument(INSTRUMENT)
            await relay.put(snapshot(1))
            await relay.publish([update(2), update(3)])  # nobody connected: only the store
            await relay.put(snapshot(3))
            reader, writer = await asyncio.open_unix_connection(str(relay.path))
            await connected(relay)
            trade = Trade("SIM", "BTC-USD", 1, "t1", 101, 2, 0, 4, 4, epoch=9)
            await relay.publish([update(4), trade])
            await relay.put(snapshot(4))
            got = await read_frames(reader, relay.path, 6)
            assert got == [
                (STORE, INSTRUMENT),
                (STORE, snapshot(3)),  # the latest only; 2 and 3 were never streamed
                (HELD, None),  # what the store held is sent
                (EVENT, update(4)),
                (EVENT, trade),
                (STORE, snapshot(4)),
            ]
            assert await relay.get("SIM", "BTC-USD") == snapshot(4)
            assert await relay.instruments() == [INSTRUMENT]
            writer.close()
            await connected(relay, 0)

    asyncio.run(run())


def test_a_live_worker_far_behind_is_cut_and_the_source_never_waits(tmp_path: Path) -> None:
    async def run() -> None:
        async for relay in started(tmp_path, max_buffer=64 << 10):
            reader, writer = await asyncio.open_unix_connection(str(relay.path))
            keeping_up, kw = await asyncio.open_unix_connection(str(relay.path))
            await connected(relay, 2)
            cut = cuts()
            got: list[tuple[int, Event | None]] = []
            drain = asyncio.create_task(_drain(keeping_up, relay.path, got))
            batches = 0
            while relay.workers == 2:  # the one that reads nothing is cut, nothing waited
                await asyncio.wait_for(relay.publish([update(batches + 1)] * 200), 5)
                batches += 1
                await asyncio.sleep(0)
                assert batches < 10_000, "never cut"
            assert cuts() == cut + 1
            assert relay.workers == 1
            while await asyncio.wait_for(reader.read(1 << 16), 10):
                pass  # what it held, then EOF: it reconnects and resyncs
            await relay.publish([update(batches + 1)])
            await asyncio.sleep(0.2)
            drain.cancel()
            # The one that kept up got every batch, in order, and is still connected.
            seqs = [e.seq for _k, e in got if isinstance(e, BookUpdate)]
            assert seqs == [s for s in range(1, batches + 1) for _ in range(200)] + [batches + 1]
            writer.close()
            kw.close()

    asyncio.run(run())


async def _drain(
    reader: asyncio.StreamReader,
    path: Path,
    into: list[tuple[int, Event | None]],
    until: int = 0,
) -> None:
    """Read frames into ``into`` until EOF, or until it holds ``until``."""
    frames = Frames(path)
    while (not until or len(into) < until) and (chunk := await reader.read(1 << 16)):
        into.extend(decoded(frames.feed(chunk)))


def test_a_self_paced_source_waits_for_its_worker_and_cuts_one_that_takes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module.Relay, "STALL_S", 0.3)

    async def run() -> None:
        async for relay in started(tmp_path, high_water=16 << 10):
            reader, writer = await asyncio.open_unix_connection(str(relay.path))
            await connected(relay)
            cut = cuts()
            published = 0
            while relay.workers:  # it reads nothing: publish waits, then cuts it
                await asyncio.wait_for(relay.publish([update(published + 1)] * 100), 10)
                published += 1
                assert published < 10_000, "never waited"
            assert cuts() == cut + 1
            writer.close()

            # A worker that reads: every event arrives, none is dropped however far the
            # source runs ahead of it, because the source waits.
            reader, writer = await asyncio.open_unix_connection(str(relay.path))
            await connected(relay)
            got: list[tuple[int, Event | None]] = []
            frames = 1 + 300 * 50  # HELD, then the updates
            drain = asyncio.create_task(_drain(reader, relay.path, got, until=frames))
            for seq in range(1, 301):
                await asyncio.wait_for(relay.publish([update(seq)] * 50), 10)
            await asyncio.wait_for(drain, 10)
            seqs = [e.seq for k, e in got if isinstance(e, BookUpdate)]
            assert seqs == [s for s in range(1, 301) for _ in range(50)]
            assert cuts() == cut + 1  # not cut: it kept taking
            writer.close()

    asyncio.run(run())


def test_the_frame_reader_refuses_a_header_no_frame_can_have(tmp_path: Path) -> None:
    frames = Frames(tmp_path / "relay.sock")
    whole = frame(EVENT, encode(update(1))) + frame(STORE, encode(snapshot(1)))
    assert frames.feed(whole[:3]) == []
    assert [decode(p) for _k, p in frames.feed(whole[3:])] == [update(1), snapshot(1)]
    with pytest.raises(RelayError, match=r"relay .*relay\.sock sent a bad frame header \(kind 88"):
        frames.feed(HEADER.pack(3, ord("X")) + b"abc")
    with pytest.raises(RelayError, match="bad frame header"):
        Frames(tmp_path / "r").feed(HEADER.pack(relay_module.MAX_FRAME + 1, EVENT))


def test_a_late_worker_knows_every_stream_when_the_store_is_held(tmp_path: Path) -> None:
    """relay_source: the node of a worker that connects after the feed's instruments were
    published learns every stream from the store, and is told when all of it is in (the
    worker joins the port only then); the books sync from the replica on the next update."""

    async def run() -> None:
        async for relay in started(tmp_path):
            other = Instrument("SIM", "ETH-USD", "0.01", "0.0001")
            await relay.put_instrument(INSTRUMENT)
            await relay.put_instrument(other)
            await relay.put(snapshot(3))
            node = FanoutNode(FanoutConfig(port=0, anonymous=True), MemorySnapshots())
            replica, held = MemorySnapshots(), asyncio.Event()
            source = asyncio.create_task(relay_source(node, relay.path, replica, held))
            try:
                await asyncio.wait_for(held.wait(), 10)
                listed = [(s["venue"], s["symbol"]) for s in node.stream_list()]
                assert listed == [("SIM", "BTC-USD"), ("SIM", "ETH-USD")]
                assert await replica.get("SIM", "BTC-USD") == snapshot(3)
                assert sorted(await replica.instruments(), key=str) == sorted(
                    [INSTRUMENT, other], key=str
                )
            finally:
                source.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await source
                await node.stop()

    asyncio.run(run())
