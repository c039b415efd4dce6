"""Kafka plumbing shared by feed, fanout and recorder (aiokafka).

Topics: ``<prefix>.book`` (book updates), ``<prefix>.trades`` and
``<prefix>.instruments``, keyed by ``venue:symbol`` so one stream stays in
one partition and in order. Consumers never trust broker offsets for
correctness (Tansu can misreport end offsets): they dedupe and detect gaps
by each stream's own seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from hub.config import KafkaConfig
from hub.errors import ServiceUnavailable
from hub.events import (
    Bar,
    BookSnapshot,
    BookUpdate,
    Event,
    Instrument,
    Status,
    TopOfBook,
    Trade,
    encode,
)

log = logging.getLogger("hub.kafka")


def topic_names(cfg: KafkaConfig) -> dict[str, str]:
    p = cfg.topic_prefix
    return {
        "book": f"{p}.book",
        "trades": f"{p}.trades",
        "instruments": f"{p}.instruments",
        "bbo": f"{p}.bbo",
        "depth": f"{p}.depth",
        "bars": f"{p}.bars",
    }


def unavailable(cfg: KafkaConfig, exc: BaseException) -> ServiceUnavailable:
    if isinstance(exc, KafkaConnectionError | OSError):
        reason = "connection refused or broker not answering"
    elif isinstance(exc, asyncio.TimeoutError):
        reason = "timed out"
    else:
        reason = str(exc) or type(exc).__name__
    return ServiceUnavailable("Kafka", cfg.bootstrap, reason)


@contextlib.contextmanager
def quiet_client() -> Iterator[None]:
    """Silence aiokafka's own connection errors while we turn them into one clear error."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def ensure_topics(cfg: KafkaConfig, wait_s: float = 10.0) -> None:
    """Create the hub's topics if they are missing; raise ServiceUnavailable if Kafka is down."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=cfg.bootstrap, request_timeout_ms=int(wait_s * 1000)
    )
    try:
        with quiet_client():
            await asyncio.wait_for(admin.start(), wait_s)
    except (TimeoutError, KafkaError, OSError) as exc:
        await admin.close()
        raise unavailable(cfg, exc) from None
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=1 if kind == "instruments" else cfg.partitions,
                replication_factor=1,
            )
            for kind, name in topic_names(cfg).items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def stream_key(venue: str, symbol: str) -> bytes:
    return f"{venue}:{symbol}".encode()


class KafkaPublisher:
    """Publisher that writes events to the hub's topics, keyed by stream."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.topics = topic_names(cfg)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            acks=cfg.acks if cfg.acks == "all" else int(cfg.acks),
            enable_idempotence=cfg.idempotent,
            linger_ms=cfg.linger_ms,
            max_batch_size=1 << 20,
            request_timeout_ms=15000,
        )

    async def start(self) -> None:
        try:
            with quiet_client():
                await asyncio.wait_for(self._producer.start(), 15)
        except (TimeoutError, KafkaConnectionError, KafkaError, OSError) as exc:
            await self._producer.stop()
            raise unavailable(self.cfg, exc) from None

    async def publish(self, events: Sequence[Event]) -> None:
        """Send events and wait until the broker has acknowledged all of them."""
        futures = []
        for event in events:
            if isinstance(event, BookUpdate | Status):
                topic = self.topics["book"]  # statuses stay in order with their stream's updates
            elif isinstance(event, Trade):
                topic = self.topics["trades"]
            elif isinstance(event, Instrument):
                topic = self.topics["instruments"]
            elif isinstance(event, TopOfBook):
                topic = self.topics["bbo"]
            elif isinstance(event, BookSnapshot):
                topic = self.topics["depth"]
            elif isinstance(event, Bar):
                topic = self.topics["bars"]
            else:
                continue
            futures.append(
                await self._producer.send(
                    topic, encode(event), key=stream_key(event.venue, event.symbol)
                )
            )
        if futures:
            await asyncio.gather(*futures)

    async def stop(self, wait_s: float = 10.0) -> None:
        """Flush and close; a broker that does not answer within ``wait_s`` is given up on
        (with a warning), so shutdown never hangs on it."""
        try:
            await asyncio.wait_for(self._producer.stop(), wait_s)
        except TimeoutError:
            log.warning("Kafka producer did not close in time", extra={"wait_s": wait_s})


def consumer(
    cfg: KafkaConfig,
    *topics: str,
    group: str | None,
    offset_reset: str = "earliest",
    **kwargs: object,
) -> AIOKafkaConsumer:
    """A consumer with the hub's defaults: manual commits, explicit offset reset."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=cfg.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset=offset_reset,
        **kwargs,
    )


async def start_consumer(cfg: KafkaConfig, c: AIOKafkaConsumer) -> None:
    try:
        with quiet_client():
            await asyncio.wait_for(c.start(), 15)
    except (TimeoutError, KafkaError, OSError) as exc:
        await c.stop()
        raise unavailable(cfg, exc) from None
