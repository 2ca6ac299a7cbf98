"""Builds the ingest service from Settings: the only place that reads settings and builds adapters."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from services.ingest.adapters.kafka_writer import KafkaWriter
from services.ingest.adapters.prometheus import IngestMetrics
from services.ingest.adapters.registry import RegistrySchemaSource
from services.ingest.domain.quality import QualityCounter
from services.ingest.domain.schemas import SchemaSource
from services.ingest.service import Closer, EventWriter, IngestService
from shared.kafka.clients import consumer as kafka_consumer
from shared.settings import Settings
from shared.topics import topic_names
from shared.validation import EventTimeBounds


def read_settings() -> Settings:
    """The settings from the environment (``DRIFTLOOP_*``), for ``__main__`` to set up logging first."""
    return Settings()


def bootstrap(
    settings: Settings | None = None,
    *,
    schemas: SchemaSource | None = None,
    writer: EventWriter | None = None,
) -> IngestService:
    """The service, wired to Kafka and the registry; tests pass a fixed schema source and an in-memory writer."""
    settings = settings or Settings()
    metrics = IngestMetrics()
    closers: list[Closer] = []
    if writer is None:
        kafka = KafkaWriter(settings, timeout_s=settings.ingest_kafka_timeout_s, metrics=metrics)
        closers.append(kafka.close)
        writer = kafka
    if schemas is None:
        registry = RegistrySchemaSource(
            settings.registry_url,
            ttl_s=settings.ingest_schema_ttl_s,
            timeout_s=settings.ingest_registry_timeout_s,
            token=settings.registry_token.get_secret_value(),
        )
        closers.append(registry.aclose)
        schemas = registry
    topics = topic_names(settings.topic_prefix)

    def raw_consumer() -> AIOKafkaConsumer:
        """The raw topics as one consumer group, shared by every replica of the validator."""
        return kafka_consumer(
            settings,
            topics.predictions_raw,
            topics.labels_raw,
            group_id=f"{settings.topic_prefix}{settings.ingest_validator_group}",
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    return IngestService(
        settings=settings,
        topics=topics,
        writer=writer,
        schemas=schemas,
        metrics=metrics,
        quality=QualityCounter(),
        reject_unknown_models=settings.ingest_reject_unknown_models,
        time_bounds=EventTimeBounds.from_settings(settings),
        raw_consumer=raw_consumer,
        closers=closers,
    )
