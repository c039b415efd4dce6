"""The embedded hub's bus across processes, for ``hub demo --workers N``.

The demo's feed process (simulator or venue, order path, book core) writes to a
``Relay``: it is both the ``Publisher`` and the ``SnapshotStore`` the feed sees. It keeps
the latest snapshot of each book and every instrument in memory, as the one-process
demo does, and streams what the feed writes (events, snapshots, instruments), in the
order written, to every fanout worker connected on its Unix socket. A worker
(``relay_source``) keeps a replica of the store and hands its node the events: the
node runs the same code as behind Kafka and Redis, syncing each book from a snapshot
and following it by seq.

A worker that connects first gets every instrument and the latest snapshot of each
book, a mark that they are all sent, then the live stream; the events it missed
meanwhile are a seq gap its node resyncs across. So a worker that restarts, or that
the relay cut, loses nothing it cannot rebuild.

Pacing follows ``InProcessBus``: with ``high_water`` (bytes), a self-paced source (the
simulator, a file replay) waits while a worker's socket holds more than that, so the
demo runs at the speed its workers take; a worker that takes nothing for ``STALL_S``
is cut. A live venue cannot be slowed: a worker more than ``max_buffer`` bytes behind
is cut at once, reconnects and resyncs.

Frames: a 4-byte big-endian length, a kind byte (``E``: an event for the node, ``S``:
a snapshot or instrument for the store, ``H``: what the store held is sent, no payload),
then the event's wire encoding (``hub.events.encode``). A worker joins the shared port
only after ``H``: by then its node knows every stream, so no client that lands on it is
told a stream the port carries does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import Counter, Gauge

from bus.local import MemorySnapshots, wait_for_room
from hub.events import BookSnapshot, Event, Instrument, encode
from hub.ops import metrics, runs

log = logging.getLogger("hub.relay")
METRICS = metrics("relay")

HEADER = struct.Struct(">IB")
EVENT = ord("E")
STORE = ord("S")
HELD = ord("H")
KINDS = (EVENT, STORE, HELD)
MAX_FRAME = 64 << 20
"""Largest frame a worker accepts (a snapshot of a very deep book is a few MB)."""
MAX_BUFFER = 64 << 20
"""Bytes a worker of a live source may fall behind before the relay cuts it."""
HIGH_WATER = 256 << 10
"""Bytes a worker may hold unread before a self-paced source waits for it (about
0.1 s of the demo's flow at ten times its default rate)."""
READ_CHUNK = 1 << 20

PEERS = Gauge("hub_relay_workers", "Fanout workers connected to the demo's relay", registry=METRICS)
CUT = Counter(
    "hub_relay_cut_total",
    "Workers the relay disconnected for falling behind (they reconnect and resync)",
    registry=METRICS,
)
WAITED = Counter(
    "hub_relay_wait_seconds_total",
    "Time a self-paced source waited for the slowest worker",
    registry=METRICS,
)


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


class _Peer:
    """One connected worker."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.buffered = writer.transport.get_write_buffer_size

    def close(self) -> None:
        """Drop the connection now, with whatever it still holds unsent (the worker
        resyncs from the snapshots it gets first when it reconnects)."""
        self.writer.transport.abort()


class Relay:
    """The feed side: Publisher and SnapshotStore of the demo's feed, streamed to workers."""

    STALL_S = 5.0

    def __init__(self, path: Path, high_water: int = 0, max_buffer: int = MAX_BUFFER) -> None:
        self.path = path
        self.store = MemorySnapshots()
        self.high_water = high_water
        self.max_buffer = max_buffer
        self._peers: list[_Peer] = []
        self._server: asyncio.Server | None = None
        runs("relay")

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for peer in list(self._peers):
            peer.close()
        self.path.unlink(missing_ok=True)

    @property
    def workers(self) -> int:
        return len(self._peers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _Peer(writer)
        # What the store holds, then the live stream: nothing is published in between (no
        # await until the peer is listed), so the worker misses no write after these.
        instruments, books = self.store.held()
        held: list[Event] = [*instruments, *books]
        writer.write(b"".join([*(frame(STORE, encode(x)) for x in held), frame(HELD, b"")]))
        self._peers.append(peer)
        PEERS.set(len(self._peers))
        log.info("fanout worker connected", extra={"workers": len(self._peers)})
        try:
            while await reader.read(4096):
                pass  # a worker sends nothing; EOF is its end
        except OSError:
            pass
        finally:
            if peer in self._peers:  # not cut: it left
                self._peers.remove(peer)
                PEERS.set(len(self._peers))
                writer.close()
                log.info("fanout worker disconnected", extra={"workers": len(self._peers)})

    def _send(self, data: bytes) -> None:
        for peer in list(self._peers):
            if not self.high_water and peer.buffered() > self.max_buffer:
                self._cut(peer, f"more than {self.max_buffer} bytes behind")
                continue
            peer.writer.write(data)

    def _cut(self, peer: _Peer, why: str) -> None:
        CUT.inc()
        self._peers.remove(peer)
        PEERS.set(len(self._peers))
        log.warning("fanout worker cut; it reconnects and resyncs", extra={"reason": why})
        peer.close()

    # --- Publisher ---------------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> None:
        if self._peers:
            self._send(b"".join(frame(EVENT, encode(e)) for e in events))
        if self.high_water:
            await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        waited, stalled = await wait_for_room(
            lambda: [p.buffered() for p in self._peers], self.high_water, self.STALL_S
        )
        WAITED.inc(waited)
        if stalled:
            for peer in list(self._peers):
                if peer.buffered() > self.high_water:
                    self._cut(peer, f"took nothing for {self.STALL_S:g} s")

    # --- SnapshotStore -----------------------------------------------------------------

    async def put(self, snapshot: BookSnapshot) -> None:
        await self.store.put(snapshot)
        if self._peers:
            self._send(frame(STORE, encode(snapshot)))

    async def put_instrument(self, instrument: Instrument) -> None:
        await self.store.put_instrument(instrument)
        if self._peers:
            self._send(frame(STORE, encode(instrument)))

    async def get(self, venue: str, symbol: str) -> BookSnapshot | None:
        return await self.store.get(venue, symbol)

    async def instruments(self) -> list[Instrument]:
        return await self.store.instruments()


# --- the worker side (fanout.sources.relay_source) -----------------------------------


class RelayError(Exception):
    """The relay's stream cannot be read on (the worker reconnects)."""


class Frames:
    """Cut a worker's byte stream into (kind, payload) frames."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """The frames ``chunk`` completes; RelayError on a header no frame can have."""
        buffer = self._buffer
        buffer += chunk
        out = []
        at = 0
        while len(buffer) - at >= HEADER.size:
            size, kind = HEADER.unpack_from(buffer, at)
            if size > MAX_FRAME or kind not in KINDS:
                raise RelayError(
                    f"relay {self.path} sent a bad frame header (kind {kind}, {size} bytes)"
                )
            end = at + HEADER.size + size
            if end > len(buffer):
                break
            out.append((kind, bytes(buffer[at + HEADER.size : end])))
            at = end
        del buffer[:at]
        return out
