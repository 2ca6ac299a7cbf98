"""The ingest service: its ports and its use cases (validate a batch, write what passed, count everything)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from services.ingest.adapters.prometheus import IngestMetrics
from services.ingest.domain.quality import QualityCounter
from services.ingest.domain.schemas import SchemaSource
from services.ingest.domain.validation import BatchResult, EventKind, EventTimeBounds, validate_batch
from shared import codec, wire
from shared.sdk.batches import KeyedRecord
from shared.settings import Settings
from shared.topics import Topics

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

__all__ = ["Closer", "EventWriter", "IngestService", "RawConsumerFactory", "SchemaSource"]

log = logging.getLogger(__name__)


class EventWriter(Protocol):
    """Where accepted events go: every record acknowledged, or ``KafkaUnavailableError`` (nothing counts)."""

    async def write(self, records: Sequence[KeyedRecord]) -> None: ...


RawConsumerFactory = Callable[[], "AIOKafkaConsumer"]
"""A new consumer of the raw topics in the validator's consumer group (the stream validator's input)."""

Closer = Callable[[], Awaitable[None]]


@dataclass
class IngestService:
    """What the entrypoints call; the writer raises ``KafkaUnavailableError`` when nothing was accepted.

    ``settings`` are the ones :func:`services.ingest.bootstrap.bootstrap` built it from (the entrypoints read
    their limits there); ``closers`` close the adapters it built, at shutdown.
    """

    settings: Settings
    topics: Topics
    writer: EventWriter
    schemas: SchemaSource
    metrics: IngestMetrics
    quality: QualityCounter
    reject_unknown_models: bool
    time_bounds: EventTimeBounds = field(default_factory=EventTimeBounds)
    raw_consumer: RawConsumerFactory | None = None
    closers: list[Closer] = field(default_factory=list)

    def topic_for(self, kind: EventKind) -> str:
        return self.topics.predictions if kind is EventKind.PREDICTION else self.topics.labels

    async def ingest(self, kind: EventKind, payloads: Sequence[bytes]) -> BatchResult:
        """Validated events go straight to the validated topic (they need no second check) after the acks."""
        result = await validate_batch(
            kind,
            payloads,
            self.schemas,
            reject_unknown_models=self.reject_unknown_models,
            quality=self.quality,
            bounds=self.time_bounds,
        )
        topic = self.topic_for(kind)
        await self.writer.write(
            [(topic, event.model_name.encode(), wire.encode(event)) for _, event in result.accepted]
        )
        if result.accepted:
            self.metrics.accepted.labels(kind.value, "http").inc(len(result.accepted))
        for _, rejection in result.rejected:
            self.metrics.rejected.labels(kind.value, rejection.reason, "http").inc()
        return result

    async def publish_quality(self) -> int:
        """Send the interval's DataQualityCounted events; on failure keep the counts for the next try."""
        events = self.quality.drain()
        if not events:
            return 0
        try:
            await self.writer.write([(self.topics.data_quality, e.key, codec.encode(e)) for e in events])
        except Exception:
            self.quality.restore(events)
            raise
        self.metrics.quality_events.inc(len(events))
        return len(events)

    async def close(self) -> None:
        """Close what bootstrap opened for this service (Kafka producer, registry client)."""
        for close in self.closers:
            await close()
