"""Kafka plumbing shared by feed, fanout and recorder (aiokafka).

Topics are ``<prefix>.<topic>`` for each topic the event table names
(``hub.events``: book updates and statuses on ``book``, then ``trades``,
``instruments``, ``bbo``, ``depth`` and ``bars``), keyed by ``venue:symbol`` so
one stream stays in one partition and in order. Consumers never trust broker
offsets for correctness (Tansu can misreport end offsets): they dedupe and
detect gaps by each stream's own seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConfigurationError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnsupportedVersionError,
)

from hub.config import KafkaConfig
from hub.errors import HubError, ServiceUnavailable
from hub.events import EVENT_TYPES, TOPICS, Event

log = logging.getLogger("hub.kafka")


def topic_names(cfg: KafkaConfig) -> dict[str, str]:
    """The full name of each of the hub's topics, by the topic the event table names."""
    return {topic: f"{cfg.topic_prefix}.{topic}" for topic in TOPICS}


def unavailable(cfg: KafkaConfig, exc: BaseException) -> ServiceUnavailable:
    if isinstance(exc, asyncio.TimeoutError):  # before OSError: TimeoutError is one
        reason = "timed out"
    elif isinstance(exc, KafkaConnectionError | OSError):
        reason = "connection refused or broker not answering"
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
            async with asyncio.timeout(wait_s):
                await admin.start()
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
    except (KafkaError, OSError) as exc:
        raise unavailable(cfg, exc) from None
    finally:
        await admin.close()


def stream_key(venue: str, symbol: str) -> bytes:
    return f"{venue}:{symbol}".encode()


Record = tuple[str, bytes, bytes]
"""One message as the producer sends it: topic, key (the stream), encoded event."""

PERMANENT = (
    MessageSizeTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    KafkaConfigurationError,
    UnsupportedVersionError,
)
"""Producer errors retrying cannot cure; every other broker or transport failure can
(a broker that restarted answers UnknownError or lost topics until it has them back)."""


def publish_error(cfg: KafkaConfig, exc: BaseException) -> HubError:
    """The hub error for a failed send: ServiceUnavailable (retriable) for a broker that is
    down, restarting or wedged; a non-retriable HubError for a message the broker refuses."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, PERMANENT):
        return HubError(f"Kafka at {cfg.bootstrap} refused the message: {exc!r}")
    return unavailable(cfg, exc)


class KafkaPublisher:
    """Publisher that writes events to the hub's topics, keyed by stream.

    Every failure surfaces as a HubError whose ``retriable`` says whether trying again
    (with a new producer) can help; ReliablePublisher (bus.kafka_publish) does that."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.topics = topic_names(cfg)
        self._routes: dict[type, tuple[str, Callable[[Any], bytes]]] = {
            cls: (self.topics[declared.topic], declared.encode)
            for cls, declared in EVENT_TYPES.items()
        }
        """Each event class's topic and encoder, from the event table."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            acks=cfg.acks if cfg.acks == "all" else int(cfg.acks),
            enable_idempotence=cfg.idempotent,
            linger_ms=cfg.linger_ms,
            max_batch_size=1 << 20,
            request_timeout_ms=15000,
        )

    async def start(self, wait_s: float = 15.0) -> None:
        try:
            with quiet_client():
                async with asyncio.timeout(wait_s):
                    await self._producer.start()
        except (TimeoutError, KafkaError, OSError) as exc:
            await self.abort()
            raise unavailable(self.cfg, exc) from None

    def records(self, events: Sequence[Event]) -> list[Record]:
        """Encode events into the messages that carry them; TypeError for an object that
        is not an event (nothing is sent as some other kind)."""
        out = []
        routes = self._routes
        for event in events:
            route = routes.get(type(event))
            if route is None:
                raise TypeError(f"not an event: {type(event).__name__}")
            topic, encode = route
            out.append((topic, stream_key(event.venue, event.symbol), encode(event)))
        return out

    async def send(self, records: Sequence[Record]) -> None:
        """Send messages and wait until the broker has acknowledged all of them."""
        try:
            futures = [
                await self._producer.send(topic, value, key=key) for topic, key, value in records
            ]
            if futures:
                await asyncio.gather(*futures)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise publish_error(self.cfg, exc) from exc

    async def publish(self, events: Sequence[Event]) -> None:
        """Send events and wait until the broker has acknowledged all of them."""
        await self.send(self.records(events))

    async def stop(self, wait_s: float = 10.0) -> None:
        """Flush and close; a broker that does not answer within ``wait_s`` is given up on
        (with a warning), so shutdown never hangs on it."""
        try:
            async with asyncio.timeout(wait_s):
                await self._producer.stop()
        except TimeoutError:
            log.warning("Kafka producer did not close in time", extra={"wait_s": wait_s})
            await self.abort()

    async def abort(self) -> None:
        """Close without flushing: stop the sender task (which otherwise retries for ever
        against a dead broker) and the client's connections. Unsent messages are lost."""
        sender = getattr(self._producer, "_sender", None)
        with contextlib.suppress(Exception):
            if sender is not None:
                await sender.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._producer.stop()  # no sender left: nothing to flush, just close
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._producer.client.close()  # in case an interrupted stop() left it


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


START_S = 15.0
"""How long a consumer without a group may take to start: a broker that answers does it
at once; one that is down refuses at once; this bounds one that hangs."""
JOIN_S = 120.0
"""How long a consumer in a group may take to start, which includes joining the group: a
member that died without leaving (SIGKILL, a lost host) holds its partitions until its
session times out and the group rebalances (~20 s on the local broker), so a replacement
started at once must wait for that instead of reporting Kafka down."""


async def start_consumer(cfg: KafkaConfig, c: AIOKafkaConsumer, group: str = "") -> None:
    """Start ``c`` (bounded by ``START_S``, or ``JOIN_S`` with a ``group``, when it says
    once after a few seconds what it waits for); ServiceUnavailable if it cannot."""
    bound = JOIN_S if group else START_S

    async def say_waiting() -> None:
        await asyncio.sleep(5)
        log.info(
            "waiting to join the consumer group (a member that stopped without leaving"
            " holds it until its session times out)",
            extra={"group": group, "bound_s": bound},
        )

    waiting = asyncio.get_running_loop().create_task(say_waiting()) if group else None
    try:
        with quiet_client():
            async with asyncio.timeout(bound):
                await c.start()
    except (TimeoutError, KafkaError, OSError) as exc:
        await c.stop()
        raise unavailable(cfg, exc) from None
    finally:
        if waiting is not None:
            waiting.cancel()
