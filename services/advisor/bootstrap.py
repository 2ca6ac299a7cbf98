"""The advisor's composition root: the one place that reads settings and builds its adapters.

Tests build the same advisor with fakes through the keyword overrides (``tests/unit/test_advisor_service.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from services.advisor.adapters.clickhouse import ClickHouseAdviceSink, ClickHouseStorage
from services.advisor.adapters.http_services import HttpServices
from services.advisor.adapters.kafka import KafkaAdvicePublisher
from services.advisor.adapters.monitor_health import MonitorHealth
from services.advisor.domain.advice import Policy
from services.advisor.entrypoints.stream import AdvisorLoop
from services.advisor.service import (
    AdvicePublisher,
    AdviceSink,
    Advisor,
    HttpSource,
    LagSource,
    StorageSource,
    WatchedGroup,
    WorkerSource,
)
from shared.clickhouse import clickhouse_client
from shared.dependencies import Dependencies
from shared.kafka.admin import LagReader
from shared.kafka.clients import producer
from shared.settings import Settings
from shared.topics import monitor_group, topic_names


def policy(settings: Settings) -> Policy:
    return Policy(
        slo_s=settings.advisor_slo_seconds,
        headroom=settings.advisor_headroom,
        horizon_s=settings.advisor_horizon_seconds,
        window_s=settings.advisor_window_seconds,
        disk_warn_days=settings.advisor_disk_warn_days,
    )


def monitor_urls(settings: Settings) -> list[str]:
    given = [u.strip() for u in settings.advisor_monitor_urls.split(",") if u.strip()]
    return given or [f"http://127.0.0.1:{settings.monitor_web_port}/health"]


def http_urls(settings: Settings) -> dict[str, str]:
    """``name=url`` pairs of ``advisor_http_urls``; empty: this machine's ingest, registry and model server."""
    given = [p.strip() for p in settings.advisor_http_urls.split(",") if p.strip()]
    if given:
        pairs = [p.partition("=") for p in given]
        bad = [name for name, sep, url in pairs if not sep or not name or not url]
        if bad:
            raise ValueError(f"advisor_http_urls: expected name=url pairs, got {bad!r}")
        return {name.strip(): url.strip() for name, _, url in pairs}
    return {
        "ingest": f"http://127.0.0.1:{settings.ingest_port}/metrics",
        "registry": f"{settings.registry_url.rstrip('/')}/metrics",
        "model-server": f"http://127.0.0.1:{settings.serving_port}/metrics",
    }


class Wiring(NamedTuple):
    advisor: Advisor
    loop: AdvisorLoop
    settings: Settings


def bootstrap(
    settings: Settings | None = None,
    *,
    lag: LagSource | None = None,
    workers: WorkerSource | None = None,
    storage: StorageSource | None = None,
    publisher: AdvicePublisher | None = None,
    sink: AdviceSink | None = None,
    clock: Callable[[], float] | None = None,
    http: HttpSource | None = None,
) -> Wiring:
    """The advisor and its loop; each port not given is built from ``settings`` (Kafka, ClickHouse, monitors).

    Kafka clients are built here, so call it inside a running event loop.
    """
    settings = settings or Settings()
    topics = topic_names(settings.topic_prefix)
    lag_reader = LagReader(settings) if lag is None else None
    health = MonitorHealth(monitor_urls(settings)) if workers is None else None
    services = HttpServices(http_urls(settings)) if http is None else None
    kafka = KafkaAdvicePublisher(producer(settings), topics.scale_advice) if publisher is None else None

    def connect() -> Any:
        return clickhouse_client(settings)

    advisor = Advisor(
        groups=[
            WatchedGroup("monitor", monitor_group(settings.topic_prefix), (topics.predictions, topics.labels))
        ],
        lag=lag or lag_reader,  # type: ignore[arg-type]
        workers=workers or health,  # type: ignore[arg-type]
        storage=storage or ClickHouseStorage(connect, settings.clickhouse_database),
        publisher=publisher or kafka,  # type: ignore[arg-type]
        sink=sink or ClickHouseAdviceSink(connect, settings.monitor_retention_days),
        policy=policy(settings),
        dependencies=Dependencies(),
        http=http or services,
        **({"clock": clock} if clock else {}),
    )

    async def start() -> None:
        if kafka is not None:
            await kafka.start()
        if lag_reader is not None:
            await lag_reader.start()

    async def stop() -> None:
        for close in (
            kafka and kafka.stop,
            lag_reader and lag_reader.stop,
            health and health.close,
            services and services.close,
        ):
            if close:
                await close()

    return Wiring(advisor, AdvisorLoop(advisor, settings.advisor_interval_seconds, start, stop), settings)
