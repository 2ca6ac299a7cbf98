"""The monitor's composition root: the one place that reads settings and builds its adapters.

Tests build the same service with fakes through the keyword overrides (``tests/unit/monitor_fakes.py``).
Kafka clients must be built inside a running event loop (aiokafka asks for it), so call these from one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from services.monitor.adapters.clickhouse.checkpoints import ClickHouseCheckpoints
from services.monitor.adapters.clickhouse.sink import ClickHouseSink
from services.monitor.adapters.clickhouse.waits import CLICKHOUSE_WAITS
from services.monitor.adapters.clickhouse.window_reader import ClickHouseWindowReader
from services.monitor.adapters.kafka import Publisher as KafkaPublisher
from services.monitor.adapters.prometheus import MonitorMetrics
from services.monitor.adapters.registry import RegistryProfiles, registry_client
from services.monitor.domain.profiles import load_profiles_file
from services.monitor.entrypoints.stream import MonitorLoop, consumer_options
from services.monitor.errors import MonitorError
from services.monitor.service import (
    CheckpointReader,
    Monitor,
    ProfileSource,
    Publisher,
    RowSink,
    WindowReader,
)
from shared.dependencies import Dependencies
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.clients import producer as kafka_producer
from shared.settings import Settings


def bootstrap(
    settings: Settings | None = None,
    *,
    profiles: ProfileSource | None = None,
    profiles_file: Path | None = None,
    inserts: Sequence[RowSink] | None = None,
    judging: RowSink | None = None,
    windows: WindowReader | None = None,
    checkpoints: CheckpointReader | None = None,
    publisher: Publisher | None = None,
    metrics: MonitorMetrics | None = None,
    dependencies: Dependencies | None = None,
    worker: str | None = None,
) -> Monitor:
    """One monitor worker; each port not given is built from ``settings`` (ClickHouse, Kafka, the registry).

    ``profiles_file`` reads the references from a JSON file instead of the registry. The first insert sink
    creates the tables; the judging sink reads windows and checkpoints and writes results beside the inserts.
    """
    settings = settings or Settings()
    dependencies = dependencies or Dependencies()
    if profiles is None:
        profiles = (
            load_profiles_file(profiles_file, settings.drift_thresholds)
            if profiles_file is not None
            else RegistryProfiles(settings, registry_client(settings))
        )
    if inserts is None:
        inserts = [ClickHouseSink(settings)] + [
            ClickHouseSink(settings, create_tables=False) for _ in range(settings.monitor_insert_streams - 1)
        ]
    if judging is None:
        judging = clickhouse_judging = ClickHouseSink(settings, create_tables=False)
        windows = windows or ClickHouseWindowReader(clickhouse_judging)
        checkpoints = checkpoints or ClickHouseCheckpoints(clickhouse_judging)
    if windows is None or checkpoints is None:
        raise MonitorError("a judging sink given without its window reader and checkpoint reader")
    if publisher is None:
        publisher = KafkaPublisher(
            kafka_producer(settings, linger_ms=5),
            dependencies,
            f"Kafka at {settings.kafka_bootstrap} (publishing)",
        )
    return Monitor(
        settings,
        inserts=inserts,
        judging=judging,
        windows=windows,
        checkpoints=checkpoints,
        profiles=profiles,
        publisher=publisher,
        metrics=metrics or MonitorMetrics(),
        dependencies=dependencies,
        worker=worker or f"{os.uname().nodename}:{os.getpid()}",
        clickhouse_waits=CLICKHOUSE_WAITS.waited_s,
    )


def stream_loop(monitor: Monitor, consumer: AIOKafkaConsumer | None = None) -> MonitorLoop:
    """The Kafka loop feeding ``monitor``, with the worker's consumer in the monitor's group."""
    settings = monitor.settings
    return MonitorLoop(settings, monitor, consumer or kafka_consumer(settings, **consumer_options(settings)))
