"""Where a fanout node gets market data: the in-process bus, the demo's relay or Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from bus.kafka import consumer, start_consumer, topic_names
from bus.local import InProcessBus, MemorySnapshots
from bus.relay import EVENT, HELD, READ_CHUNK, Frames, RelayError
from fanout.node import FanoutNode
from hub.backoff import Backoff
from hub.config import KafkaConfig
from hub.errors import BadMessage
from hub.events import EVENT_TYPES, BookSnapshot, Instrument, decode

log = logging.getLogger("hub.fanout")

SOURCE_SLICE_S = 0.002
"""Longest stretch of source events handled before the node serves its clients again."""


class Slicer:
    """Yield to the event loop once ``SOURCE_SLICE_S`` of work has gone by: a large batch
    from the source (or a backlog on the bus) never holds up clients' requests and writes."""

    def __init__(self) -> None:
        self.since = time.perf_counter()

    async def tick(self) -> None:
        if time.perf_counter() - self.since > SOURCE_SLICE_S:
            await asyncio.sleep(0)
            self.since = time.perf_counter()


async def bus_source(node: FanoutNode, bus: InProcessBus) -> None:
    """Feed the node from the embedded hub's bus."""
    queue = bus.subscribe()
    slicer = Slicer()
    try:
        while True:
            node.on_event(await queue.get())
            await slicer.tick()
    finally:
        bus.unsubscribe(queue)


async def relay_source(
    node: FanoutNode,
    path: Path,
    replica: MemorySnapshots,
    held: asyncio.Event | None = None,
) -> None:
    """Feed the node from the demo's relay at ``path`` (bus.relay), keeping ``replica``,
    the node's snapshot store, up to date; reconnect whenever the stream ends (the node
    resyncs across what it missed), until cancelled. ``held`` is set once the node has
    what the relay's store held when it first connected: every instrument (so every
    stream) and each book's latest snapshot."""
    backoff = Backoff(0.05, 2.0, "spread")
    said = False
    while True:
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
        except OSError as exc:
            if not said:
                log.warning(
                    "demo relay unreachable; retrying",
                    extra={"path": str(path), "error": repr(exc)},
                )
                said = True
            await backoff.wait()
            continue
        said = False
        backoff.reset()
        try:
            await _follow_relay(reader, node, replica, path, held)
            log.warning("demo relay ended the stream; reconnecting", extra={"path": str(path)})
        except (OSError, RelayError) as exc:
            log.warning(
                "demo relay stream broke; reconnecting",
                extra={"path": str(path), "error": str(exc)},
            )
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _follow_relay(
    reader: asyncio.StreamReader,
    node: FanoutNode,
    replica: MemorySnapshots,
    path: Path,
    held: asyncio.Event | None,
) -> None:
    frames = Frames(path)
    slicer = Slicer()
    bad = 0
    while chunk := await reader.read(READ_CHUNK):
        for kind, payload in frames.feed(chunk):
            if kind == HELD:
                if held is not None:
                    held.set()
                continue
            try:
                message = decode(payload)
                if kind == EVENT:
                    node.on_event(message)
                elif isinstance(message, BookSnapshot):
                    await replica.put(message)
                elif isinstance(message, Instrument):
                    await replica.put_instrument(message)
                    node.on_event(message)  # the node learns the stream (a late worker too)
                else:
                    raise BadMessage(f"a {type(message).__name__} is not for the snapshot store")
            except Exception as exc:  # one bad message never stops the node
                bad += 1
                log.warning(
                    "relay message dropped",
                    extra={"path": str(path), "kind": chr(kind), "error": repr(exc), "bad": bad},
                )
            await slicer.tick()


async def kafka_source(node: FanoutNode, cfg: KafkaConfig) -> None:
    """Feed the node from Kafka: every partition of the topics of the events it takes
    (book, trades, bars, instruments).

    No consumer group: each node reads all streams it serves, from wherever
    the broker puts it, and relies on seq for dedupe and on the snapshot
    store for the starting point.
    """
    topics = topic_names(cfg)
    c = consumer(
        cfg,
        *dict.fromkeys(topics[EVENT_TYPES[kind].topic] for kind in node.event_kinds),
        group=None,
        offset_reset="latest",
    )
    await start_consumer(cfg, c)
    bad = 0
    slicer = Slicer()
    try:
        while True:
            batches = await c.getmany(timeout_ms=100, max_records=5000)
            for records in batches.values():
                for record in records:
                    await slicer.tick()
                    try:
                        node.on_event(decode(record.value))
                    except Exception as exc:  # one poisoned record never stops the node
                        bad += 1
                        log.warning(
                            "undecodable message dropped"
                            if isinstance(exc, BadMessage)
                            else "message could not be handled; dropped",
                            extra={
                                "topic": record.topic,
                                "partition": record.partition,
                                "offset": record.offset,
                                "error": repr(exc),
                                "bad": bad,
                            },
                        )
    finally:
        await c.stop()
