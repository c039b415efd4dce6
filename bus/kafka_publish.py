"""The feed's publishing path to Kafka: survives a broker outage or restart.

While the broker answers, ``publish`` sends and waits for the acknowledgement
(at most ``kafka.publish_timeout_ms``), as KafkaPublisher does. When a send
fails with a retriable error (the broker is down, restarting, lost its topics,
or aiokafka's client is wedged and answers UnknownError), or is not
acknowledged in time, the publisher goes *down*:

- the failed batch and every later one go, in order, into a bounded buffer
  (``kafka.buffer_bytes``: messages with their keys and object overhead), and
  ``publish`` returns at once, so the source keeps running and its books stay
  current;
- a recovery task throws the old producer away, waits (``Backoff`` from
  ``kafka.retry_first_ms`` doubling to ``kafka.retry_max_ms``), re-creates the
  topics a memory-only broker lost, starts a new producer and resends the
  buffer in order; when the buffer is empty the publisher is *up* again. While
  the resend runs, each publish waits for it (at most one publish timeout), so
  a busy source cannot keep the buffer from emptying.

Nothing is lost while the buffer has room. A batch is resent whole, so a
consumer may see an event twice; every consumer drops a seq it already has.
When the buffer is full, newer messages are dropped, counted per stream
(``hub_kafka_dropped_total``) and logged; the stream's next event then shows
consumers a seq gap, and they resync it from the snapshot store, which the feed
keeps writing during the outage. A stream whose newest messages were all dropped
(it went quiet) gets its newest one sent after the buffer, so the gap shows
there too. ``health`` is not ok while down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge

from bus.kafka import KafkaPublisher, Record, ensure_topics
from hub.backoff import Backoff
from hub.config import KafkaConfig
from hub.errors import HubError
from hub.events import Event
from hub.ops import metrics, runs

METRICS = metrics("kafka")

log = logging.getLogger("hub.kafka")

CONNECTED = Gauge(
    "hub_kafka_connected", "1 while the broker acknowledges what we publish", registry=METRICS
)
RETRIES = Counter(
    "hub_kafka_publish_retries_total",
    "Failed attempts to reach the broker again and resend",
    registry=METRICS,
)
RESTARTS = Counter(
    "hub_kafka_producer_restarts_total",
    "Producers re-created after the broker failed",
    registry=METRICS,
)
OUTAGES = Counter(
    "hub_kafka_outages_total", "Times the broker became unreachable", registry=METRICS
)
BUFFERED = Counter(
    "hub_kafka_buffered_total", "Messages put in the publish buffer", registry=METRICS
)
RESENT = Counter(
    "hub_kafka_resent_total", "Buffered messages sent after the broker returned", registry=METRICS
)
DROPPED = Counter(
    "hub_kafka_dropped_total",
    "Messages dropped because the publish buffer was full",
    ["stream"],
    registry=METRICS,
)
BUFFER_BYTES = Gauge(
    "hub_kafka_buffer_bytes",
    "Memory held by messages waiting in the publish buffer",
    registry=METRICS,
)
BUFFER_MESSAGES = Gauge(
    "hub_kafka_buffer_messages", "Messages waiting in the publish buffer", registry=METRICS
)

RECORD_OVERHEAD = 96
"""Bytes a buffered message holds beyond its key and value (tuple and object headers)."""


def held(key: bytes, value: bytes) -> int:
    """Memory one buffered message holds, as counted against ``kafka.buffer_bytes``."""
    return len(key) + len(value) + RECORD_OVERHEAD


RESEND_CHUNK = 5000
"""Buffered messages sent (and acknowledged) per step of the resend; halved, down to
MIN_CHUNK, each time a step is not acknowledged in time, so a slow broker still moves on."""
MIN_CHUNK = 100


class ReliablePublisher:
    """A Publisher over Kafka that buffers through outages and recovers by itself."""

    def __init__(self, cfg: KafkaConfig) -> None:
        runs("kafka")
        self.cfg = cfg
        self._producer = KafkaPublisher(cfg)
        self._buffer: collections.deque[Record] = collections.deque()
        self._buffer_bytes = 0
        self.up = False
        self.reason = "not started"
        self.down_since: float | None = None
        self.dropped: collections.Counter[str] = collections.Counter()
        self._tails: dict[tuple[str, bytes], Record] = {}
        """Per topic and stream, the newest dropped message with nothing kept after it:
        sent once the buffer is delivered, so a stream that went quiet after losing
        messages still shows consumers its gap (they resync; those who have it drop it)."""
        self._recovery: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None
        """Set while the buffer is being resent to a broker that is back; publish waits."""
        self._closing = False

    async def start(self) -> None:
        """Connect the first producer; raise ServiceUnavailable if the broker is down now
        (at start-up a clear error beats waiting for a broker that may never come)."""
        await self._producer.start()
        self._set_up()

    def _set_up(self) -> None:
        self.up = True
        self.reason = ""
        self.down_since = None
        CONNECTED.set(1)

    async def publish(self, events: Sequence[Event]) -> None:
        """Send events; while the broker is unreachable, buffer them (in order) instead."""
        records = self._producer.records(events)
        if not records:
            return
        if self.up and not self._buffer:
            try:
                async with asyncio.timeout(self.cfg.publish_timeout_ms / 1000):
                    await self._producer.send(records)
                return
            except TimeoutError:
                self._went_down(f"no acknowledgement in {self.cfg.publish_timeout_ms} ms")
            except HubError as exc:
                if not exc.retriable:
                    raise
                self._went_down(str(exc))
        self._keep(records)
        if not self._closing and (self._recovery is None or self._recovery.done()):
            self._went_down(self.reason or "messages buffered with no recovery running")
        if self._drained is not None:
            # The broker is back and the buffer is being resent: wait for it (at most one
            # publish timeout), so a busy source cannot keep the buffer from emptying.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.publish_timeout_ms / 1000):
                    await self._drained.wait()

    def _went_down(self, reason: str) -> None:
        if self.up:
            OUTAGES.inc()
            log.warning(
                "Kafka unreachable; buffering what the feed publishes",
                extra={"why": reason, "buffer_bytes": self.cfg.buffer_bytes},
            )
            self.down_since = time.monotonic()
        self.up = False
        self.reason = reason
        CONNECTED.set(0)
        if (self._recovery is None or self._recovery.done()) and not self._closing:
            self._recovery = asyncio.create_task(self._recover(), name="kafka-recovery")

    def _keep(self, records: list[Record]) -> None:
        """Append compact copies to the buffer; past its bound, drop and count per stream."""
        room = self.cfg.buffer_bytes - self._buffer_bytes
        kept = 0
        for topic, key, value in records:
            size = held(key, value)
            # orjson's output keeps its whole working buffer (~4 KB) behind even a 200-byte
            # message; a copy holds just the bytes (measured: 4.2 KB -> 0.3 KB a message).
            if size > room:
                stream = key.decode(errors="replace")
                if not self.dropped:
                    log.error(
                        "Kafka publish buffer full; dropping messages until the broker "
                        "returns (consumers will resync the streams from snapshots)",
                        extra={"buffer_bytes": self.cfg.buffer_bytes},
                    )
                self.dropped[stream] += 1
                DROPPED.labels(stream).inc()
                self._tails[topic, key] = (topic, key, memoryview(value).tobytes())
                continue
            room -= size
            self._tails.pop((topic, key), None)  # this later message shows the gap itself
            self._buffer.append((topic, key, memoryview(value).tobytes()))
            self._buffer_bytes += size
            kept += 1
        BUFFERED.inc(kept)
        self._gauges()

    def _gauges(self) -> None:
        BUFFER_BYTES.set(self._buffer_bytes)
        BUFFER_MESSAGES.set(len(self._buffer))

    async def _recover(self) -> None:
        """Until the buffer is delivered: new producer, topics, resend in order."""
        backoff = Backoff(self.cfg.retry_first_ms / 1000, self.cfg.retry_max_ms / 1000, "spread")
        old, self._producer = self._producer, KafkaPublisher(self.cfg)
        await old.abort()
        resent = 0
        size = RESEND_CHUNK
        while True:
            sending = False
            try:
                await ensure_topics(self.cfg, wait_s=self.cfg.publish_timeout_ms / 1000)
                await self._producer.start(wait_s=self.cfg.publish_timeout_ms / 1000)
                RESTARTS.inc()
                sending = True
                self._drained = asyncio.Event()
                # Until both are empty with no await in between: what publish() buffers
                # meanwhile is sent too, and the publisher is up only with nothing left.
                while self._buffer or self._tails:
                    if self._buffer:
                        resent += await self._resend(size)
                    else:
                        await self._send_tails()
                break
            except Exception as exc:  # whatever the client raised, a new one is the cure
                self._release()
                permanent = isinstance(exc, HubError) and not exc.retriable
                if permanent:
                    log.error(
                        "Kafka refused buffered messages; dropping them",
                        extra={"error": str(exc), "messages": len(self._buffer)},
                    )
                    self._buffer.clear()
                    self._buffer_bytes = 0
                    self._tails.clear()
                    self._gauges()
                else:
                    RETRIES.inc()
                    self.reason = str(exc) or "no acknowledgement in time"
                    if sending and isinstance(exc, TimeoutError):
                        size = max(MIN_CHUNK, size // 2)  # a slow broker: smaller steps
                    if not isinstance(exc, HubError | TimeoutError):
                        log.exception("unexpected error while reconnecting to Kafka; retrying")
                old, self._producer = self._producer, KafkaPublisher(self.cfg)
                await old.abort()
                if not permanent:
                    await backoff.wait()
        outage = time.monotonic() - (self.down_since or time.monotonic())
        log.info(
            "Kafka reachable again; buffered messages sent",
            extra={
                "resent": resent,
                "outage_s": round(outage, 3),
                "dropped": sum(self.dropped.values()),
                "dropped_streams": sorted(self.dropped),
            },
        )
        self.dropped.clear()
        self._set_up()
        self._release()

    def _release(self) -> None:
        """Let the publish calls waiting for the resend go on (it ended, or failed)."""
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    async def _resend(self, size: int) -> int:
        """Send the oldest ``size`` buffered messages; drop them once acknowledged."""
        chunk = [self._buffer[i] for i in range(min(size, len(self._buffer)))]
        async with asyncio.timeout(self.cfg.publish_timeout_ms / 1000):
            await self._producer.send(chunk)
        for _ in chunk:
            _topic, key, value = self._buffer.popleft()
            self._buffer_bytes -= held(key, value)
        RESENT.inc(len(chunk))
        self._gauges()
        return len(chunk)

    async def _send_tails(self) -> None:
        """Send each quiet stream's newest dropped message (see ``_tails``)."""
        sent = list(self._tails.items())
        async with asyncio.timeout(self.cfg.publish_timeout_ms / 1000):
            await self._producer.send([record for _key, record in sent])
        for key, record in sent:
            if self._tails.get(key) is record:  # not replaced by a newer one meanwhile
                del self._tails[key]

    def health(self) -> dict[str, Any]:
        """What /healthz shows of the broker; ``ok`` is False while it is unreachable."""
        out: dict[str, Any] = {
            "ok": self.up,
            "buffered_messages": len(self._buffer),
            "buffered_bytes": self._buffer_bytes,
        }
        if not self.up:
            out["reason"] = self.reason
            if self.down_since is not None:
                out["down_s"] = round(time.monotonic() - self.down_since, 3)
        if self.dropped:
            out["dropped"] = dict(self.dropped)
        return out

    async def stop(self, wait_s: float = 5.0) -> None:
        """Stop retrying and close within ``wait_s``; what is still buffered is lost (and
        logged: consumers resync those streams when the feed publishes again)."""
        self._closing = True
        self._release()
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            await asyncio.wait([self._recovery], timeout=wait_s)
        if self._buffer:
            log.warning(
                "stopping with messages never published (Kafka unreachable)",
                extra={"messages": len(self._buffer), "reason": self.reason},
            )
        if self.up:
            await self._producer.stop(wait_s)
        else:
            await self._producer.abort()
        CONNECTED.set(0)
