"""How the SDK's producer is tuned; defaults suit one app on one machine, ``from_settings`` wires a deployment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from shared.kafka.clients import KafkaConnection
from shared.settings import Settings
from shared.topics import topic_names


@dataclass(frozen=True)
class ProducerConfig:
    """Settings of one :class:`~shared.sdk.Driftloop` producer.

    ``spool_dir`` is locked by one producer; another one with the same configuration (a replica on the
    same machine) takes ``<spool_dir>-1``, ``-2``, ... ``max_disk_bytes`` caps each local buffer used while
    Kafka is unreachable, after which events are dropped with a warning.
    """

    bootstrap: str = "127.0.0.1:9092"
    predictions_topic: str = "predictions-raw"
    labels_topic: str = "labels-raw"
    spool_dir: Path = Path(".driftloop/sdk-spool/default")
    client_id: str = "driftloop-sdk"
    max_memory_events: int = 200_000
    max_disk_bytes: int = 1 << 30
    segment_bytes: int = 16 << 20
    linger_ms: int = 5
    compression: str | None = "zstd"
    max_batch_bytes: int = 900 * 1024  # even incompressible, a batch stays under the broker's 1 MiB limit
    chunk_events: int = 20_000
    spill_after_s: float = 2.0
    request_timeout_ms: int = 10_000
    retry_backoff_s: float = 0.5
    extra_producer_options: dict[str, object] = field(default_factory=dict)
    # TLS/SASL of the deployment (from_settings fills it); None is plaintext to ``bootstrap``
    security: KafkaConnection | None = None

    def __post_init__(self) -> None:
        if self.max_memory_events < 1 or self.max_disk_bytes < 1 or self.chunk_events < 1:
            raise ValueError("max_memory_events, max_disk_bytes and chunk_events must be positive")
        if self.spill_after_s <= 0:
            raise ValueError("spill_after_s must be positive")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, app_name: str = "default", **overrides: object
    ) -> ProducerConfig:
        """The deployment's broker and raw topics; the spool lives under ``data_dir/sdk-spool/<app_name>``."""
        topics = topic_names(settings.topic_prefix)
        values: dict[str, object] = {
            "bootstrap": settings.kafka_bootstrap,
            "predictions_topic": topics.predictions_raw,
            "labels_topic": topics.labels_raw,
            "spool_dir": settings.data_dir / "sdk-spool" / app_name,
            "client_id": f"driftloop-sdk-{app_name}",
            "security": KafkaConnection.from_settings(settings),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def connection(self) -> KafkaConnection:
        """How the producer reaches Kafka: ``bootstrap`` with the deployment's TLS/SASL, if any."""
        if self.security is None:
            return KafkaConnection(self.bootstrap)
        return dataclasses.replace(self.security, bootstrap=self.bootstrap)
