"""Prometheus metrics of the ingest service, in their own registry (built at start-up, not at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class IngestMetrics:
    """Accepted events, rejections by reason, dead letters by model and reason, Kafka write latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.accepted = Counter(
            "driftloop_ingest_accepted_events",
            "Events accepted into the pipeline.",
            ["kind", "source"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "driftloop_ingest_rejected_events",
            "Events refused, by reason (HTTP 4xx items and dead-lettered stream events).",
            ["kind", "reason", "source"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "driftloop_ingest_dead_lettered_events",
            "Events written to the dead-letter topic, by model and reason.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.requests_refused = Counter(
            "driftloop_ingest_refused_requests",
            "Whole requests refused before validation (auth, size, Kafka unavailable), by status.",
            ["status"],
            registry=self.registry,
        )
        self.kafka_write_seconds = Histogram(
            "driftloop_ingest_kafka_write_seconds",
            "Time from handing a batch to Kafka to every acknowledgement (acks=all).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.quality_events = Counter(
            "driftloop_ingest_quality_events",
            "DataQualityCounted events published.",
            registry=self.registry,
        )
