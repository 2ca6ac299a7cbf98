"""Builds the ingest FastAPI app from Settings at start-up: Kafka writer, schema source, metrics, validator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.ingest.errors import BodyTooLargeError, KafkaUnavailableError, UnsupportedMediaTypeError
from services.ingest.kafka_writer import KafkaWriter
from services.ingest.metrics import IngestMetrics
from services.ingest.quality import QualityCounter
from services.ingest.schemas import RegistrySchemaSource, SchemaSource
from services.ingest.service import EventWriter, IngestService
from shared.settings import Settings
from shared.topics import topic_names
from shared.validation import EventTimeBounds

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


def build_service(
    settings: Settings, *, schemas: SchemaSource | None = None, writer: EventWriter | None = None
) -> tuple[IngestService, list[Closer]]:
    """The service and what to close at shutdown; tests pass a fixed schema source."""
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
    service = IngestService(
        topics=topic_names(settings.topic_prefix),
        writer=writer,
        schemas=schemas,
        metrics=metrics,
        quality=QualityCounter(),
        reject_unknown_models=settings.ingest_reject_unknown_models,
        time_bounds=EventTimeBounds.from_settings(settings),
    )
    return service, closers


def _report_crash(task: asyncio.Task[None]) -> None:
    """A background worker that dies of a bug must be loud, not leave the API up with nothing behind it."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("ingest background task %s stopped", task.get_name(), exc_info=task.exception())


def create_app(
    settings: Settings,
    *,
    schemas: SchemaSource | None = None,
    writer: EventWriter | None = None,
    run_validator: bool | None = None,
) -> FastAPI:
    """The ingest app; with ``run_validator`` the stream validator runs in the same process."""
    from services.ingest.api import router
    from services.ingest.validator import StreamValidator, publish_quality_every

    service, closers = build_service(settings, schemas=schemas, writer=writer)
    with_validator = settings.ingest_run_validator if run_validator is None else run_validator

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(publish_quality_every(service, settings.ingest_quality_interval_s))]
        if with_validator:
            tasks.append(asyncio.create_task(StreamValidator(settings, service).run()))
        for task in tasks:
            task.add_done_callback(_report_crash)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(KafkaUnavailableError):
                await service.publish_quality()
            for close in closers:
                await close()

    app = FastAPI(title="Driftloop ingest", lifespan=lifespan)
    app.state.settings = settings
    app.state.service = service
    app.include_router(router)

    @app.exception_handler(KafkaUnavailableError)
    async def kafka_unavailable(request: Request, exc: KafkaUnavailableError) -> JSONResponse:
        service.metrics.requests_refused.labels("503").inc()
        log.warning("503: %s", exc)
        return JSONResponse(
            {"detail": "Kafka is unavailable; nothing in this request was accepted. Retry later."},
            status_code=503,
            headers={"Retry-After": str(settings.ingest_retry_after_s)},
        )

    @app.exception_handler(BodyTooLargeError)
    async def too_large(request: Request, exc: BodyTooLargeError) -> JSONResponse:
        service.metrics.requests_refused.labels("413").inc()
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(UnsupportedMediaTypeError)
    async def unsupported_media_type(request: Request, exc: UnsupportedMediaTypeError) -> JSONResponse:
        service.metrics.requests_refused.labels("415").inc()
        return JSONResponse({"detail": str(exc)}, status_code=415)

    return app
