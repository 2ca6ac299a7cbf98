"""Stream validator: raw topics → validated topics, anything invalid → dead-letter with its original bytes.

Producers that skip HTTP (the SDK, model servers) write to ``predictions-raw``/``labels-raw``. This
worker validates each event once, in batches, forwards it normalised to ``predictions``/``labels`` or
keeps it on ``dead-letter`` with the reason and source, then commits the consumer offsets, so a crash
re-validates (at-least-once; sinks deduplicate by ``event_id``). Run it with
``python -m services.ingest --validator-only``, or inside the ingest service (``ingest_run_validator``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from services.ingest.domain.routing import EMPTY, RawMessage, route
from services.ingest.domain.validation import EventKind, Origin, validate_batch
from services.ingest.errors import KafkaUnavailableError
from services.ingest.service import IngestService
from shared.sdk.batches import KeyedRecord

log = logging.getLogger(__name__)

BATCH_MAX = 10_000
RETRY_S = 1.0


class StreamValidator:
    """Consumes the raw topics as one consumer group (shared by every replica) and validates batches."""

    def __init__(self, service: IngestService) -> None:
        self.service = service
        topics = service.topics
        self.sources = {topics.predictions_raw: EventKind.PREDICTION, topics.labels_raw: EventKind.LABEL}
        self.validated = 0
        self.dead_lettered = 0
        self.committed = 0  # input messages whose outputs were acknowledged and offsets committed

    async def validate(self, source_topic: str, messages: Sequence[RawMessage]) -> list[KeyedRecord]:
        """The output records for one topic's batch, counting per model and reason as it goes."""
        kind = self.sources[source_topic]
        service = self.service
        payloads = [m.value if m.value is not None else b"" for m in messages]
        result = await validate_batch(
            kind,
            payloads,
            service.schemas,
            reject_unknown_models=service.reject_unknown_models,
            quality=service.quality,
            bounds=service.time_bounds,
            origins=[Origin(source_topic, m.partition, m.offset, m.timestamp_ms) for m in messages],
        )
        result.rejected = [(i, EMPTY if messages[i].value is None else r) for i, r in result.rejected]
        records, letters = route(
            source_topic,
            messages,
            result,
            valid_topic=service.topic_for(kind),
            dead_letter_topic=service.topics.dead_letter,
        )
        service.metrics.accepted.labels(kind.value, "stream").inc(len(result.accepted))
        for letter in letters:
            service.metrics.rejected.labels(kind.value, letter.reason, "stream").inc()
            service.metrics.dead_lettered.labels(letter.model_name[:200], letter.reason).inc()
        self.validated += len(result.accepted)
        self.dead_lettered += len(letters)
        return records

    async def _write_until_acknowledged(self, records: list[KeyedRecord]) -> None:
        """Offsets are committed only after this returns, so Kafka trouble means waiting, not losing."""
        attempt = 0
        while True:
            try:
                await self.service.writer.write(records)
                return
            except KafkaUnavailableError as exc:
                attempt += 1
                if attempt == 1 or attempt % 30 == 0:
                    log.warning("validator cannot write to Kafka (%s); retrying", exc)
                await asyncio.sleep(RETRY_S)

    def _consumer(self) -> AIOKafkaConsumer:
        if self.service.raw_consumer is None:
            raise RuntimeError("this ingest service was built without a raw-topics consumer (see bootstrap)")
        return self.service.raw_consumer()

    async def run(self) -> None:
        """Validate until cancelled; broker outages are waited out, never raised."""
        failures = 0
        while True:
            consumer = self._consumer()
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    log.warning(
                        "validator cannot reach Kafka at %s (%s); retrying",
                        self.service.settings.kafka_bootstrap,
                        exc,
                    )
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
                await asyncio.sleep(RETRY_S)
                continue
            failures = 0
            try:
                await self._consume(consumer)
            except KafkaError as exc:
                log.warning("validator lost its consumer (%s); restarting it", exc)
                await asyncio.sleep(RETRY_S)
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_MAX)
            if not batches:
                continue
            records: list[KeyedRecord] = []
            consumed = 0
            for tp, messages in batches.items():
                raw = [RawMessage(m.partition, m.offset, m.value, m.timestamp) for m in messages]
                consumed += len(raw)
                records.extend(await self.validate(tp.topic, raw))
            await self._write_until_acknowledged(records)
            await consumer.commit()
            self.committed += consumed


async def publish_quality_every(service: IngestService, interval_s: float) -> None:
    """Publish data-quality counts once per interval until cancelled (counts survive Kafka outages)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await service.publish_quality()
        except KafkaUnavailableError as exc:
            log.warning("data-quality counts kept for the next interval: %s", exc)


async def serve(service: IngestService) -> None:
    """The standalone worker: validator, data-quality publishing and a Prometheus endpoint."""
    settings = service.settings
    start_http_server(settings.ingest_port + 1, registry=service.metrics.registry)
    try:
        await asyncio.gather(
            StreamValidator(service).run(),
            publish_quality_every(service, settings.ingest_quality_interval_s),
        )
    finally:
        await service.close()
