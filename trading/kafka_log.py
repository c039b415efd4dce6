"""The venue's sequenced log as a Kafka topic (the distributed layout).

Same contract as the journal file (``trading/journal.py``): ``append`` buffers,
``commit`` makes everything appended durable at once, and only then do the
acknowledgements go out. Here a commit is one batch of records produced to
the single partition of ``<prefix>.orders.log`` and acknowledged by the broker
(``acks=all``; idempotent where the broker supports it, ``kafka.idempotent``).
Each record is one command in the journal's codec (``trading/journal.py``: a JSON array).
On start the whole topic is read back, from the beginning to the end offset
it had at that moment, to rebuild the venue; a record that is not a command record is
refused (logged and counted, ``trading/replay.py``) and skipped, and every command
is re-checked as it is replayed, as from the journal file. A topic whose first record is
in the format before issue 15 (a JSON object) is refused as a whole (``JournalError``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from bus.kafka import consumer, quiet_client, start_consumer, unavailable
from hub.config import KafkaConfig
from trading.journal import encode, is_record, old_format, old_format_error
from trading.messages import Command
from trading.replay import refused


class KafkaLog:
    supports_checkpoints = False
    checkpoint: dict[str, Any] | None = None

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.topic = f"{cfg.topic_prefix}.orders.log"
        self.path = f"kafka:{self.topic}"
        self.recovered: list[Any] = []
        """The command records read back (``decode`` makes them commands)."""
        self._read = 0
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()
        self.commits = 0
        self.committed = 0
        self._producer: AIOKafkaProducer | None = None

    async def open(self) -> None:
        """Create the topic if it is missing, read it back, start the producer."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.cfg.bootstrap)
        try:
            with quiet_client():
                await asyncio.wait_for(admin.start(), 15)
            if self.topic not in set(await admin.list_topics()):
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([NewTopic(self.topic, 1, 1)])
        except (TimeoutError, KafkaError, OSError) as exc:
            raise unavailable(self.cfg, exc) from None
        finally:
            await admin.close()
        tp = TopicPartition(self.topic, 0)
        c = consumer(self.cfg, group=None)
        await start_consumer(self.cfg, c)
        try:
            c.assign([tp])
            end = (await c.end_offsets([tp]))[tp]
            await c.seek_to_beginning(tp)
            # To the end offset, then on until the topic is quiet: nobody else writes the
            # log, and a broker whose end offset lags its last acknowledged record (seen
            # with Tansu) must not cost us that record.
            while True:
                batch = await c.getmany(tp, timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        self._recover(r.offset, r.value)
                if not batch and await c.position(tp) >= end:
                    break
        finally:
            await c.stop()
        self.committed = len(self.recovered)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.cfg.bootstrap,
            acks="all",
            enable_idempotence=self.cfg.idempotent,
            linger_ms=0,
            max_batch_size=1 << 20,
            request_timeout_ms=15000,
        )
        try:
            with quiet_client():
                await asyncio.wait_for(self._producer.start(), 15)
        except (TimeoutError, KafkaError, OSError) as exc:
            await self._producer.stop()
            raise unavailable(self.cfg, exc) from None

    def _recover(self, offset: int, value: bytes | None) -> None:
        """Keep one record read back if it is a command record; anything else (not this
        venue's writing) is refused like a command replay refuses, and skipped."""
        self._read += 1
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            record = None
        if is_record(record):
            self.recovered.append(record)
        elif self._read == 1 and old_format(record):
            raise old_format_error(f"order log {self.path}")
        else:
            refused(self.path, offset, "malformed", "not a command record", value or b"")

    def __iter__(self) -> Any:
        return iter(self.recovered)

    def append(self, command: Command) -> None:
        self._pending.append(encode(command))

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def commit(self) -> int:
        """Produce everything appended so far; return once the broker acknowledged all."""
        assert self._producer is not None, "open() first"
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            futures = [await self._producer.send(self.topic, v, partition=0) for v in batch]
            await asyncio.gather(*futures)
            self.commits += 1
            self.committed += len(batch)
            return len(batch)

    async def aclose(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
