"""The relay's Kafka producer: outbox rows to one topic, keyed by model name, acks=all with idempotence."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from services.registry.domain.outbox import OutboxMessage, Published
from shared.kafka.clients import Endpoint, connection
from shared.kafka.clients import producer as kafka_producer

ROW_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)
"""Kafka errors about one record (not the broker being away): they count against the row."""


class KafkaPublisher:
    """Publishes outbox messages to one topic, keyed by model name, acks=all with idempotence (ordered)."""

    def __init__(self, kafka: Endpoint, topic: str) -> None:
        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = kafka_producer(self.kafka, linger_ms=0)
            await producer.start()
            self._producer = producer
        return self._producer

    async def __call__(self, messages: Sequence[OutboxMessage]) -> Published:
        """Send ``messages``; a record Kafka refuses for its size is reported, not raised, and its model's
        later rows are not sent. Raises when Kafka is away (nothing is counted against the rows)."""
        if not messages:
            return Published([], {})
        producer = await self._started()
        rejected: dict[int, str] = {}
        held: set[str] = set()
        futures = []
        try:
            for m in messages:
                if m.model_name in held:
                    continue
                try:
                    future = await producer.send(self.topic, m.payload, key=m.model_name.encode())
                except ROW_ERRORS as exc:
                    rejected[m.id] = f"{type(exc).__name__}: {exc}"
                    held.add(m.model_name)
                    continue
                futures.append((m, future))
            results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        except Exception:
            await self.close()  # start afresh next time: the producer may be wedged
            raise
        sent = []
        for (m, _), outcome in zip(futures, results, strict=True):
            if isinstance(outcome, ROW_ERRORS):
                rejected[m.id] = f"{type(outcome).__name__}: {outcome}"
            elif isinstance(outcome, BaseException):
                await self.close()
                raise outcome
            else:
                sent.append(m.id)
        return Published(sent, rejected)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
