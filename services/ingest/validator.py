"""Stream validator: raw topics → validated topics, anything invalid → dead-letter with its original bytes.

Producers that skip HTTP (the SDK, model servers) write to ``predictions-raw``/``labels-raw``. This
worker validates each event once, in batches, forwards it normalised to ``predictions``/``labels`` or
keeps it on ``dead-letter`` with the reason and source, then commits the consumer offsets, so a crash
re-validates (at-least-once; sinks deduplicate by ``event_id``). Run it with
``python -m services.ingest.validator``, or inside the ingest service (``ingest_run_validator``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from services.ingest.errors import KafkaUnavailableError
from services.ingest.service import IngestService
from services.ingest.validation import BatchResult, EventKind, Origin, Rejection, validate_batch
from shared import codec, wire
from shared.events import EventDeadLettered
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.logs import quiet_kafka_client
from shared.sdk.batches import KeyedRecord
from shared.settings import Settings
from shared.validation import dead_letter

log = logging.getLogger(__name__)

BATCH_MAX = 10_000
RETRY_S = 1.0


@dataclass(frozen=True)
class RawMessage:
    """A consumed message: where it came from and its exact bytes (None for a Kafka tombstone)."""

    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


def route(
    source_topic: str,
    messages: Sequence[RawMessage],
    result: BatchResult,
    *,
    valid_topic: str,
    dead_letter_topic: str,
) -> tuple[list[KeyedRecord], list[EventDeadLettered]]:
    """Kafka records for a validated batch: valid events re-encoded (defaults filled), rejects dead-lettered."""
    records: list[KeyedRecord] = []
    letters: list[EventDeadLettered] = []
    for _, event in result.accepted:
        records.append((valid_topic, event.model_name.encode(), wire.encode(event)))
    for index, rejection in result.rejected:
        message = messages[index]
        letter = dead_letter(source_topic, message.partition, message.offset, message.value, rejection)
        letters.append(letter)
        records.append((dead_letter_topic, letter.key, codec.encode(letter)))
    return records, letters


EMPTY = Rejection("empty_message", "the Kafka message has no value (tombstone)")


class StreamValidator:
    """Consumes the raw topics as one consumer group (shared by every replica) and validates batches."""

    def __init__(self, settings: Settings, service: IngestService) -> None:
        self.settings = settings
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
        return kafka_consumer(
            self.settings,
            *self.sources,
            group_id=f"{self.settings.topic_prefix}{self.settings.ingest_validator_group}",
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

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
                        self.settings.kafka_bootstrap,
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


async def serve(settings: Settings) -> None:
    """The standalone worker: validator, data-quality publishing and a Prometheus endpoint."""
    from prometheus_client import start_http_server

    from services.ingest.app import build_service

    service, closers = build_service(settings)
    start_http_server(settings.ingest_port + 1, registry=service.metrics.registry)
    try:
        await asyncio.gather(
            StreamValidator(settings, service).run(),
            publish_quality_every(service, settings.ingest_quality_interval_s),
        )
    finally:
        for close in closers:
            await close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level)
    quiet_kafka_client()
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
