"""The client side of bench.bench_fanout: many WebSocket connections in one process.

Every connection reads with a bare asyncio protocol and, while measuring, scans each
read's bytes for every ``"ts_recv":`` stamp (one per update message: book deltas and
trades carry it, snapshots and acks do not): one latency sample per update, the receive
time of the read minus the update's own stamp, kept in a 10 us histogram. Nothing is
taken per read, so a read that carries a backlog counts every late update in it.

A sample of the connections (``Verifier``) also parses every frame (orjson), keeps a real
book from the snapshot and deltas (``client.market.BookMirror``: seq ranges continuous,
the node's checksums verified when it sends them) and checks trade seqs; at the end they
hand back their books to compare with the feed's.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import re
import struct
import time
from array import array
from collections import Counter
from typing import Any, cast

import orjson
import uvloop

from bench.fanout_servers import raise_fd_limit
from client.market import BookMirror

STAMP = re.compile(rb'"ts_recv":(\d+)[,}]')
BUCKET_NS = 10_000
"""Latency histogram resolution."""
QUIET_S = 1.0
DRAIN_MAX_S = 20.0


def masked_text(payload: bytes) -> bytes:
    """One client-to-server text frame (masked, as the protocol requires)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (
        bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    )
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


class Stats:
    """What the connections of one process measured."""

    def __init__(self) -> None:
        self.measuring = False
        self.bytes = 0
        self.reads = array("q")
        """(receive time ns, updates in the read) of every read that had stamps."""
        self.raw = bytearray()
        """Their stamps in order, space-separated (parsed after the run: no work but
        copying bytes while measuring)."""
        self.open = 0
        self.closed = 0
        self.last = 0.0
        """time.monotonic() of the last read."""

    def histogram(self) -> Counter[int]:
        """Latency per update, in BUCKET_NS buckets."""
        hist: Counter[int] = Counter()
        stamps, reads, at = self.raw.split(), self.reads, 0
        for i in range(0, len(reads), 2):
            now, n = reads[i], reads[i + 1]
            hist.update([(now - int(s)) // BUCKET_NS for s in stamps[at : at + n]])
            at += n
        return hist

    @property
    def updates(self) -> int:
        return sum(self.reads[1::2])


class Reader(asyncio.Protocol):
    """One WebSocket connection that stamps every update it receives."""

    def __init__(self, request: bytes, subscribe: bytes, stats: Stats) -> None:
        self.request = request
        self.subscribe = subscribe
        self.stats = stats
        self.handshake = b""
        self.open = False
        self.tail = b""
        self.leaving = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.leaving:
            self.stats.closed += 1

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.handshake += data
            end = self.handshake.find(b"\r\n\r\n")
            if end < 0:
                return
            self.open = True
            self.stats.open += 1
            self.transport.write(masked_text(self.subscribe))
            data = self.handshake[end + 4 :]
            self.handshake = b""
        stats = self.stats
        stats.last = time.monotonic()
        self.frames(data)
        if not stats.measuring:
            self.tail = b""
            return
        now = time.time_ns()
        chunk = self.tail + data
        # A stamp takes 30 bytes ('"ts_recv":', 19 digits, ',' or '}'): one that starts in
        # the last 29 is cut off, and so may be the key in the last 9. Keep them for the
        # next read, scan the rest.
        end = chunk.find(b'"ts_recv":', max(0, len(chunk) - 29))
        if end < 0:
            end, self.tail = len(chunk), chunk[-9:]
        else:
            self.tail = chunk[end:]
        found = STAMP.findall(chunk, 0, end)
        if found:
            stats.reads.append(now)
            stats.reads.append(len(found))
            stats.raw += b" ".join(found)
            stats.raw += b" "
        stats.bytes += len(data)

    def frames(self, data: bytes) -> None:
        """Frame-level work (none here: see Verifier)."""


class Verifier(Reader):
    """A Reader that also keeps the book and trade seqs of its symbol from every frame."""

    def __init__(self, request: bytes, subscribe: bytes, stats: Stats, tick: str, lot: str):
        super().__init__(request, subscribe, stats)
        self.buf = bytearray()
        self.mirror = BookMirror(tick, lot)
        self.trade_seq: int | None = None
        self.trade_gaps = 0
        self.error: str | None = None

    def frames(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 2:
            n, head = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, head = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, head = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < head + n:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[head : head + n])
            del buf[: head + n]
            if opcode == 1 and self.error is None:
                msg = orjson.loads(payload)
                for m in msg if isinstance(msg, list) else (msg,):
                    self.message(m)

    def message(self, m: dict[str, Any]) -> None:
        kind = m.get("type")
        try:
            if kind == "snapshot" or kind == "book":
                self.mirror.apply(m)
            elif kind == "trade":
                if self.trade_seq is not None and m["seq"] != self.trade_seq + 1:
                    self.trade_gaps += 1
                self.trade_seq = m["seq"]
        except ValueError as e:  # SequenceGap, ChecksumMismatch
            self.error = f"{type(e).__name__}: {e}"

    def result(self) -> dict[str, Any]:
        mirror = self.mirror
        return {
            "seq": mirror.seq,
            "bids": mirror.bids,
            "asks": mirror.asks,
            "checksums": mirror.checksums,
            "trade_seq": self.trade_seq,
            "trade_gaps": self.trade_gaps,
            "error": self.error,
        }


async def _clients(port: int, ids: range, p: dict[str, Any], conn: Any) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    readers: list[Reader] = []
    verifiers: list[tuple[str, Verifier]] = []
    for i in ids:
        symbol = f"S{i % p['symbols']}"
        verify = (i // p["symbols"]) % p["verify_every"] == 0  # whole runs: every symbol
        book: dict[str, Any] = {"channel": "book", "symbol": symbol}
        if verify:
            book["checksum"] = True
        sub = orjson.dumps(
            {"op": "subscribe", "channels": [book, {"channel": "trades", "symbol": symbol}]}
        )
        if verify:
            make: Any = functools.partial(Verifier, request, sub, stats, "0.01", "0.0001")
        else:
            make = functools.partial(Reader, request, sub, stats)
        _, reader = await loop.create_connection(make, "127.0.0.1", port)
        readers.append(reader)
        if isinstance(reader, Verifier):
            verifiers.append((symbol, reader))
    for _ in range(3000):  # up to 60 s for the handshakes
        if stats.open >= len(readers):
            break
        await asyncio.sleep(0.02)
    conn.send(("connected", stats.open))
    start_at: float = await loop.run_in_executor(None, conn.recv)
    await asyncio.sleep(max(0.0, start_at + p["warmup_s"] - time.time()))
    stats.measuring = True
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(p["seconds"])
    stats.measuring = False
    elapsed = time.perf_counter() - started
    cpu = (time.process_time() - cpu) / elapsed
    # Drained: every worker's feed sent its last event ("fed") and nothing arrived for
    # QUIET_S since (a lagging server's backlog still counts for the books; bounded).
    assert await loop.run_in_executor(None, conn.recv) == "fed"
    for _ in range(int(DRAIN_MAX_S / 0.1)):
        if time.monotonic() - stats.last >= QUIET_S:
            break
        await asyncio.sleep(0.1)
    conn.send(
        {
            "updates": stats.updates,
            "elapsed": elapsed,
            "cpu": cpu,
            "bytes": stats.bytes,
            "hist": dict(stats.histogram()),
            "connected": stats.open,
            "closed": stats.closed,
            "books": [(symbol, v.result()) for symbol, v in verifiers],
        }
    )
    for reader in readers:
        reader.leaving = True
        reader.transport.close()


def client_process(port: int, ids: range, params: dict[str, Any], conn: Any) -> None:
    """Connections ``ids`` to ``port`` (client i follows symbol i % symbols; every
    ``verify_every``-th run of ``symbols`` clients Verifiers), driven through ``conn``."""
    raise_fd_limit()
    uvloop.run(_clients(port, ids, params, conn))
