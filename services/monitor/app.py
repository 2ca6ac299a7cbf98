"""Builds the monitor's Faust app from Settings (never at import): topics, agents, sinks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

from shared.settings import Settings

if TYPE_CHECKING:
    from services.monitor.profiles import ProfileSource


def create_app(
    settings: Settings, *, web_port: int = 6066, profiles: ProfileSource | None = None
) -> faust.App:
    """The monitor worker app; its consumer group is shared by every monitor replica."""
    app = faust.App(
        f"{settings.topic_prefix}driftloop-monitor",
        broker=[f"kafka://{s.strip()}" for s in settings.kafka_bootstrap.split(",")],
        store="memory://",
        datadir=str(settings.data_dir / "monitor"),
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        consumer_auto_offset_reset="earliest",
        web_port=web_port,
        web_bind="127.0.0.1",
        autodiscover=False,
        # take() yields early only when its buffer fills: it must hold a whole batch, or every batch
        # waits out ``monitor_batch_seconds`` (Faust's default buffer is 4096 events)
        stream_buffer_maxsize=2 * settings.monitor_batch_size,
        broker_session_timeout=settings.monitor_session_timeout_seconds,
        broker_heartbeat_interval=settings.monitor_session_timeout_seconds / 4,
    )
    from services.monitor import agents
    from services.monitor.profiles import RegistryProfiles

    agents.register(app, settings, profiles or RegistryProfiles(settings))
    return app
