"""Writing to sockets: groups of clients sharing frames, private queues, slow clients.

A connection's session decides what it receives (fanout.session, carried out
by fanout.node); the ``Sender`` decides when and how it reaches the socket: at
most one frame per group and ``flush_ms`` (at once on a quiet node), serialized
once for every member; a connection with messages of its own or a full socket
buffer on a private queue, conflated while it lags, reset to snapshots, then
closed.

A slow reader is told why it is closed: the close frame waits behind what its
socket still holds, so the connection is kept while the peer keeps reading
(up to ``slow_timeout_s``) and aborted only once it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Gauge, Histogram
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from fanout import protocol
from fanout.delivery import Client, Feed, Group
from fanout.ticker import encode_ticker
from hub.config import FanoutConfig
from hub.ops import metrics

METRICS = metrics("fanout")

log = logging.getLogger("hub.fanout")

FRAMES = Counter(
    "hub_fanout_frames_sent_total", "WebSocket frames written to sockets", registry=METRICS
)
MESSAGES = Counter(
    "hub_fanout_messages_sent_total", "Messages delivered (many per frame)", registry=METRICS
)
UPDATES_SENT = Counter(
    "hub_fanout_updates_sent_total", "Book, trade and bbo messages delivered", registry=METRICS
)
BYTES = Counter("hub_fanout_bytes_sent_total", "Payload bytes written to sockets", registry=METRICS)
RESETS = Counter(
    "hub_fanout_snapshot_resets_total", "Lagging clients reset to fresh snapshots", registry=METRICS
)
SLOW = Counter(
    "hub_fanout_slow_disconnects_total", "Clients disconnected as too slow", registry=METRICS
)
QUEUE_DEPTH = Histogram(
    "hub_fanout_queue_depth",
    "Messages per flushed frame",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
    registry=METRICS,
)
BUFFERED = Gauge(
    "hub_fanout_send_buffer_max_bytes",
    "Largest socket write buffer at last check",
    registry=METRICS,
)
LATENCY = Histogram(
    "hub_fanout_tick_to_send_seconds",
    "Hub receive time (ts_recv) of the oldest message in a frame to its socket write",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=METRICS,
)
SUBSCRIPTIONS = Gauge("hub_fanout_subscriptions", "Active subscriptions", registry=METRICS)
GROUPS = Gauge("hub_fanout_groups", "Groups of clients sharing frames", registry=METRICS)
PRIVATE = Gauge(
    "hub_fanout_private_clients", "Clients on a private queue (new, lagging)", registry=METRICS
)
RESET_WINDOW_S = 60.0
CLOSE_TIMEOUT_S = 2.0
"""A closing connection whose unsent bytes do not shrink for this long is aborted."""
CLOSE_POLL_S = 0.1
FRAME_BYTES = 256 * 1024
"""A private queue is written in frames of about this many bytes at most (clients' frame
limits are often 1 MiB)."""
UPDATE_TYPES = (b'{"type":"book"', b'{"type":"trade"', b'{"type":"bbo"', b'{"type":"l3"')
OPEN = State.OPEN


def unsent(ws: ServerConnection) -> int:
    """Bytes written to a connection that its peer has not received: the transport's buffer
    and, on Linux, the kernel's send queue."""
    transport = ws.transport
    if transport is None:
        return 0
    size = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            size += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    return size


def frames(batch: list[bytes]) -> Iterator[list[bytes]]:
    """Split a batch of messages into runs of about FRAME_BYTES (one message at least)."""
    start, size = 0, 0
    for i, msg in enumerate(batch):
        if size and size + len(msg) > FRAME_BYTES:
            yield batch[start:i]
            start, size = i, 0
        size += len(msg) + 1
    if start < len(batch):
        yield batch[start:]


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked WebSocket text frame (RFC 6455 section 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class Sender:
    """Groups, private queues and the flush schedule of one node's connections."""

    def __init__(self, cfg: FanoutConfig, snapshot_for: Callable[[Feed, str], bytes]) -> None:
        self.cfg = cfg
        self.snapshot_for = snapshot_for
        """A book feed's snapshot message for a client being reset."""
        self.groups: dict[frozenset[Feed], Group] = {}
        self.private: set[Client] = set()
        self.clients: set[Client] = set()
        """Every open connection (the node adds and removes them)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_at: asyncio.TimerHandle | None = None
        self._last_flush = 0.0

    def isolate(self, client: Client) -> None:
        """Take a client out of its group onto a private queue, keeping what the group has
        gathered for it this interval."""
        group = client.group
        if group is None:
            return
        client.group = None
        group.members.discard(client)
        client.pending = list(group.pending)
        client.oldest = group.oldest
        for feed in client.feeds.values():
            feed.targets.add(client)
        if not group.members:
            for feed in group.feeds:
                feed.targets.discard(group)
            del self.groups[group.feeds]
        self.private.add(client)

    def join(self, client: Client) -> None:
        """Move a private client that has nothing of its own pending into its group."""
        feeds = frozenset(client.feeds.values())
        if not feeds or client.closing or client.subscribing:
            return
        group = self.groups.get(feeds)
        if group is None:
            group = self.groups[feeds] = Group(feeds)
            for feed in feeds:
                feed.targets.add(group)
        for feed in feeds:
            feed.targets.discard(client)
        group.members.add(client)
        client.group = group
        self.private.discard(client)

    def write(self, client: Client, batch: list[bytes], high: int) -> int:
        """A private client's messages in frames of about FRAME_BYTES, until its socket holds
        more than ``high`` bytes: the rest waits for the next flush, so one client's long
        queue never makes a flush long. Returns how many messages were written."""
        done = 0
        for part in frames(batch):
            frame = b"[" + b",".join(part) + b"]"
            if client.deflate:
                broadcast([client.ws], frame, text=True)
            else:
                client.ws.transport.write(text_frame(frame))
            self._sent(1, part, frame, 0 if done else client.oldest)
            done += len(part)
            if client.buffered() > high:
                break
        return done

    @staticmethod
    def _sent(n: int, batch: list[bytes], frame: bytes, oldest: int) -> None:
        FRAMES.inc(n)
        MESSAGES.inc(len(batch) * n)
        UPDATES_SENT.inc(sum(1 for m in batch if m.startswith(UPDATE_TYPES)) * n)
        BYTES.inc(len(frame) * n)
        QUEUE_DEPTH.observe(len(batch))
        if oldest:
            LATENCY.observe(max(0.0, (time.time_ns() - oldest) / 1e9))

    def _write_group(self, group: Group, high: int, now: float) -> int:
        """The group's frame to each member that keeps up (one pass: check the socket,
        write); a member whose socket holds more than ``high`` bytes leaves for a private
        queue with the batch. Returns the largest write buffer seen."""
        batch, oldest = group.pending, group.oldest
        group.pending = []
        frame = b"[" + b",".join(batch) + b"]"
        wire = text_frame(frame)
        deflated = []
        worst = sent = 0
        for client in list(group.members):
            transport = client.ws.transport
            size = transport.get_write_buffer_size()
            if size > worst:
                worst = size
            if size > high:
                self.isolate(client)
                client.pending = list(batch)
                self._lagging(client, size, now)
            elif client.ws.protocol.state is OPEN:
                if client.deflate:
                    deflated.append(client.ws)
                else:
                    transport.write(wire)
                sent += 1
        if deflated:
            broadcast(deflated, frame, text=True)
        if sent:
            self._sent(sent, batch, frame, oldest)
        group.last_sent = now
        return worst

    def flush(self) -> None:
        """Write what accumulated since the last flush: one frame per group, one per
        private client. Synchronous, so nothing arrives halfway through."""
        high = self.cfg.send_buffer_kib * 1024
        now = time.monotonic()
        worst = 0
        for group in list(self.groups.values()):
            if group.pending:
                worst = max(worst, self._write_group(group, high, now))
        for client in list(self.private):
            size = client.buffered()
            worst = max(worst, size)
            if size > high and not client.lagging:
                self._lagging(client, size, now)
            if client.lagging:
                if size < client.last_size or size <= high:
                    client.progress_at = now  # the peer read something
                client.last_size = size
            if client.lagging and size > high:
                stuck = now - client.progress_at
                if stuck > self.cfg.slow_timeout_s:
                    SLOW.inc()
                    self.close(client, 1013, f"slow consumer: read nothing for {stuck:.0f} s")
                elif len(client.pending) > self.cfg.queue_limit:
                    self.reset(client, now)
                continue
            batch = client.pending
            if client.lagging:
                batch += client.drain_conflated()
                client.lagging = size > high // 2
            client.pending = []
            if batch and client.ws.protocol.state is OPEN:
                done = self.write(client, batch, high)
                client.pending = batch[done:]
                client.last_sent = now
            if not client.lagging and not client.pending:
                self.join(client)
        BUFFERED.set(worst)

    @staticmethod
    def _lagging(client: Client, size: int, now: float) -> None:
        """Start conflating a client whose socket holds more than ``send_buffer_kib``."""
        client.lagging = True
        client.lagging_since = client.progress_at = now
        client.last_size = size

    def reset(self, client: Client, now: float) -> None:
        """Replace a lagging client's queue by fresh snapshots; disconnect it when that
        keeps happening."""
        while client.resets and now - client.resets[0] > RESET_WINDOW_S:
            client.resets.popleft()
        client.resets.append(now)
        if len(client.resets) > self.cfg.max_resets:
            SLOW.inc()
            self.close(client, 1013, f"slow consumer: reset {len(client.resets)} times in a minute")
            return
        RESETS.inc()
        log.info(
            "lagging client reset to snapshots",
            extra={"key": client.grant.id, "queued": len(client.pending)},
        )
        client.pending = []
        client.conflated.clear()
        client.latest_bbo.clear()
        for sub, feed in client.feeds.items():
            if sub.channel in protocol.SNAPSHOT_CHANNELS:
                client.push(self.snapshot_for(feed, "slow_client"))
            elif sub.channel == "bbo" and feed.stream.bbo_msg is not None:
                client.push(feed.stream.bbo_msg)
            elif sub.channel == "ticker" and feed.stream.instrument is not None:
                client.push(encode_ticker(feed.stream.instrument, feed.stream.ticker))

    def close(self, client: Client, code: int, reason: str) -> None:
        if client.closing:
            return
        client.closing = True
        self.isolate(client)
        for feed in client.feeds.values():
            feed.targets.discard(client)
        self.private.discard(client)
        log.log(
            logging.WARNING if code == 1013 else logging.INFO,
            "closing client",
            extra={
                "key": client.grant.id,
                "code": code,
                "reason": reason,
                "unsent": unsent(client.ws),
            },
        )
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(self._close_or_abort(client.ws, code, reason)))

    async def _close_or_abort(self, ws: ServerConnection, code: int, reason: str) -> None:
        """Close with a reason. The close frame queues behind what the socket holds, so
        wait while the peer keeps reading (at most ``slow_timeout_s``); abort once it has
        read nothing for CLOSE_TIMEOUT_S (a peer that does not read cannot take it)."""
        ws.close_timeout = None  # the progress watch below decides when to give up
        closing = asyncio.ensure_future(ws.close(code, reason))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max(self.cfg.slow_timeout_s, CLOSE_TIMEOUT_S)
        left, still_since = unsent(ws), loop.time()
        try:
            while not closing.done():
                await asyncio.wait({closing}, timeout=CLOSE_POLL_S)
                now, before = loop.time(), left
                left = unsent(ws)
                if left < before:
                    still_since = now
                if now - still_since > CLOSE_TIMEOUT_S or now > give_up:
                    break
        finally:  # also when the node stops meanwhile
            if ws.transport is not None and not ws.transport.is_closing():
                ws.transport.abort()
        with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
            await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)

    def wake(self) -> None:
        """Make sure a flush is due: at once when the last one is more than ``flush_ms``
        ago, else when it will be. A quiet node sends an update as soon as the current
        batch of source events is handled; a busy one sends at most one frame per group
        and interval, however many updates arrive."""
        if self._flush_at is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_flush + self.cfg.flush_ms / 1000
        self._flush_at = loop.call_at(max(due, loop.time()), self._flush_due)

    def _flush_due(self) -> None:
        self._flush_at = None
        self._last_flush = asyncio.get_running_loop().time()
        self.flush()
        if any(c.pending or c.conflated for c in self.private):
            self.wake()  # lagging clients: try again next interval

    async def housekeeper(self) -> None:
        """Once a second: heartbeats to quiet connections, gauges."""
        beat = self.cfg.heartbeat_s
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            msg = protocol.encode({"type": "heartbeat", "ts": time.time_ns()})
            for group in self.groups.values():
                if now - group.last_sent >= beat and not group.pending:
                    group.pending.append(msg)
            for client in list(self.clients):
                if client.group is None and now - client.last_sent >= beat and not client.pending:
                    client.push(msg)
            self.wake()
            GROUPS.set(len(self.groups))
            PRIVATE.set(len(self.private))
            SUBSCRIPTIONS.set(sum(len(c.feeds) for c in self.clients))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._flush_at is not None:
            self._flush_at.cancel()
