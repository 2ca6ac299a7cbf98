"""Builds a model server from Settings: the only place that reads settings and builds its adapters."""

from __future__ import annotations

import os
from collections.abc import Callable

from services.serving.adapters.artifacts import ArtifactLoader
from services.serving.adapters.registry import RegistryClient
from services.serving.adapters.usage import UsageTable
from services.serving.domain.usage import UsageMeter
from services.serving.entrypoints.stream import ModelEventsWatcher
from services.serving.entrypoints.usage import UsageReporter
from services.serving.service import ModelLoader, ModelServer, Registry
from shared.clickhouse import clickhouse_client
from shared.sdk import Driftloop, ProducerConfig
from shared.sdk.timing import PredictionLogger
from shared.settings import Settings
from shared.topics import topic_names


def read_settings() -> Settings:
    """The settings from the environment (``DRIFTLOOP_*``), for ``__main__`` to set up logging first."""
    return Settings()


def bootstrap(
    settings: Settings | None = None,
    *,
    model_name: str,
    alias: str = "production",
    publish_as: str | None = None,
    sink: PredictionLogger | None = None,
    registry: Registry | None = None,
    load: ModelLoader | None = None,
    watch: bool = True,
    record_usage: bool = False,
) -> ModelServer:
    """A server of ``model_name@alias``: it publishes its predictions as app ``publish_as`` (None: it does
    not, unless a ``sink`` is given) and follows model-events when ``watch``; tests pass a fake registry.

    ``record_usage`` (the standalone server: its process is this model's alone) records requests and process
    CPU in ClickHouse's ``serving_usage`` every ``serving_usage_seconds`` (0: never)."""
    settings = settings or Settings()
    closers: list[Callable[[], object]] = []
    if sink is None and publish_as is not None:
        producer = Driftloop(ProducerConfig.from_settings(settings, app_name=publish_as))
        closers.append(producer.close)
        sink = producer
    if registry is None:
        client = RegistryClient(settings.registry_url, settings.registry_token.get_secret_value())
        closers.append(client.close)
        registry = client
    server = ModelServer(
        model_name,
        alias,
        registry=registry,
        load=load or ArtifactLoader(settings),
        sink=sink,
        closers=closers,
    )
    if record_usage and settings.serving_usage_seconds > 0:
        table = UsageTable(lambda: clickhouse_client(settings))
        closers.append(table.close)
        server.meter = UsageMeter()
        server.background.append(
            UsageReporter(
                server.meter,
                table.write,
                model_name=model_name,
                alias=alias,
                server=f"{os.uname().nodename}:{os.getpid()}",
                interval_s=settings.serving_usage_seconds,
            )
        )
    if watch:
        server.watcher = ModelEventsWatcher(
            settings,
            topic_names(settings.topic_prefix).model_events,
            model_name,
            alias,
            server.refresh,
            poll_s=settings.serving_alias_check_seconds,
        )
    return server
