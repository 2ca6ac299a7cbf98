"""The ingest service's Kafka adapter: acknowledged (acks=all, idempotent) batched writes, or an error.

A write either gets every acknowledgement within the timeout or raises
:class:`KafkaUnavailableError`, so a 202 always means "durably in Kafka". After a failure the producer
is rebuilt, so while the broker is down each request fails fast instead of queueing behind stuck batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from services.ingest.adapters.prometheus import IngestMetrics
from services.ingest.errors import KafkaUnavailableError
from shared.kafka.clients import Endpoint, connection
from shared.kafka.clients import producer as kafka_producer
from shared.sdk.batches import DELIVERY_ERRORS, KeyedRecord, KeyPartitioner, send_keyed

log = logging.getLogger(__name__)


class KafkaWriter:
    """One idempotent producer per service replica, (re)started on demand."""

    def __init__(
        self,
        kafka: Endpoint,
        *,
        timeout_s: float,
        metrics: IngestMetrics,
        client_id: str = "driftloop-ingest",
    ) -> None:
        self._kafka = connection(kafka)
        self._bootstrap = self._kafka.bootstrap
        self._timeout = timeout_s
        self._metrics = metrics
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = KeyPartitioner()
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = kafka_producer(
                    self._kafka,
                    client_id=self._client_id,
                    linger_ms=0,  # a request's events are batched whole; nothing to wait for
                    compression_type="zstd",
                    max_batch_size=900 * 1024,
                    request_timeout_ms=int(self._timeout * 1000),
                )
                try:
                    await producer.start()
                except BaseException:
                    await _stop(producer)
                    raise
                self._producer = producer
            return self._producer

    async def write(self, records: Sequence[KeyedRecord]) -> None:
        """Write and wait for every acknowledgement, or raise :class:`KafkaUnavailableError`."""
        if not records:
            return
        started = time.perf_counter()
        try:
            producer = await asyncio.wait_for(self._ensure(), self._timeout)
            failed, error = await asyncio.wait_for(
                send_keyed(producer, records, self._partitioner), self._timeout
            )
        except DELIVERY_ERRORS as exc:
            await self._reset()
            raise KafkaUnavailableError(f"Kafka at {self._bootstrap} did not acknowledge: {exc!r}") from exc
        if failed:
            await self._reset()
            raise KafkaUnavailableError(
                f"Kafka at {self._bootstrap} refused {len(failed)} records: {error!r}"
            )
        self._metrics.kafka_write_seconds.observe(time.perf_counter() - started)

    async def _reset(self) -> None:
        producer, self._producer = self._producer, None
        self._partitioner.reset()
        if producer is not None:
            await _stop(producer)

    async def close(self) -> None:
        await self._reset()


async def _stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 2.0)
    except DELIVERY_ERRORS:
        log.debug("Kafka producer did not stop cleanly", exc_info=True)
