"""The worker's own figures for Prometheus, in a registry per worker (not the global one), so tests and
several apps in one process never collide."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class MonitorMetrics:
    """Counters, gauges and histograms of one worker, read by ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "driftloop_monitor_events_stored_total",
            "Events stored in ClickHouse.",
            ["topic"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "driftloop_monitor_dead_letters_total",
            "Undecodable events sent to dead-letter.",
            ["topic"],
            registry=self.registry,
        )
        self.windows = Counter(
            "driftloop_monitor_windows_judged_total", "Windows judged.", ["stream"], registry=self.registry
        )
        self.data_windows = Counter(
            "driftloop_monitor_data_windows_total",
            "Data windows judged, by where their events came from: held (stored by this worker) or read_back.",
            ["source"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "driftloop_monitor_drift_events_total",
            "Drift and recovery events announced.",
            ["type"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "driftloop_monitor_batch_seconds",
            "Time per batch in each stage: store (rows written) and advance (windows judged, checkpointed).",
            ["stage"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.delay = Gauge(
            "driftloop_monitor_processing_delay_seconds",
            "Wall time minus the newest event time in the last batch.",
            registry=self.registry,
        )
        self.last_batch = Gauge(
            "driftloop_monitor_last_batch_timestamp_seconds",
            "When the last batch was stored.",
            registry=self.registry,
        )
        self.lag = Gauge(
            "driftloop_monitor_consumer_lag",
            "Records in this worker's partitions not yet stored, as of its last batch.",
            registry=self.registry,
        )
        self.partitions = Gauge(
            "driftloop_monitor_assigned_partitions", "Partitions this worker owns.", registry=self.registry
        )
        # capacity = handled / (wall - idle): events/s at 100% busy, what the scaling advisor divides inflow by
        self.idle_seconds = Counter(
            "driftloop_monitor_idle_seconds",
            "Seconds the Kafka loop waited for records (the rest of its running time it was busy).",
            registry=self.registry,
        )
        self.handled = Counter(
            "driftloop_monitor_handled_events",
            "Records handled and committed (stored, windows advanced).",
            registry=self.registry,
        )
        self.started = time.time()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
