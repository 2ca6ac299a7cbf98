"""The trainer's composition root: the one place that reads settings and builds its adapters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from services.trainer.adapters.registry_client import RegistryClient
from services.trainer.adapters.warehouse import Warehouse
from services.trainer.entrypoints.http import TrainerMetrics
from services.trainer.entrypoints.stream import TrainerConfig, TrainerWorker
from services.trainer.service import RegistryService, Trainer
from services.trainer.service import Warehouse as WarehousePort
from shared.artifacts import ArtifactStore, artifact_store
from shared.clickhouse import clickhouse_client
from shared.dependencies import Dependencies
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.clients import producer as kafka_producer
from shared.settings import Settings
from shared.topics import topic_names


@dataclass
class TrainerProcess:
    """What ``python -m services.trainer`` runs: the Kafka loop over the trainer, and its health page."""

    settings: Settings
    trainer: Trainer
    worker: TrainerWorker
    metrics: TrainerMetrics
    dependencies: Dependencies


def bootstrap(
    settings: Settings | None = None,
    *,
    registry: RegistryService | None = None,
    warehouse: WarehousePort | None = None,
    store: ArtifactStore | None = None,
    producer: Callable[[], AIOKafkaProducer] | None = None,
    consumer: Callable[[], AIOKafkaConsumer] | None = None,
) -> TrainerProcess:
    """The trainer wired to the registry, ClickHouse, the artifact store and Kafka; tests pass fakes.

    Nothing connects here: the worker opens each dependency when it starts, waiting while one is away.
    """
    settings = settings or Settings()
    topics = topic_names(settings.topic_prefix)
    trainer = Trainer(
        registry=registry or RegistryClient.from_settings(settings),
        warehouse=warehouse or Warehouse(lambda: clickhouse_client(settings)),
        store=store or artifact_store(settings),
        code_version=settings.code_version,
    )

    def new_consumer() -> AIOKafkaConsumer:
        return kafka_consumer(
            settings,
            topics.drift_events,
            topics.training_runs,
            group_id=f"{settings.topic_prefix}{settings.trainer_group}",
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            max_poll_interval_ms=6 * 3600 * 1000,  # a long training run must not cost us our partitions
            # partition p of both topics to the same replica: a model's drift events and retrain commands
            # share a key, hence a partition number, so one replica owns all of a model's triggers
            partition_assignment_strategy=(RangePartitionAssignor,),
        )

    metrics = TrainerMetrics()
    dependencies = Dependencies(running=False, on_change=metrics.dependencies_away.set)
    worker = TrainerWorker(
        trainer,
        TrainerConfig(topic_prefix=settings.topic_prefix, debounce_seconds=settings.trainer_debounce_seconds),
        producer=producer or (lambda: kafka_producer(settings)),
        consumer=consumer or new_consumer,
        metrics=metrics,
        dependencies=dependencies,
    )
    return TrainerProcess(settings, trainer, worker, metrics, dependencies)
