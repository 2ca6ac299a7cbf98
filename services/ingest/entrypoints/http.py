"""The ingest HTTP API: thin routes from requests to :class:`IngestService`, and the app that serves them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from services.ingest.domain.bodies import (
    JSON_TYPES,
    NDJSON_TYPES,
    NotABatchError,
    is_ndjson,
    media_type,
    read_limited,
    split_batch,
)
from services.ingest.domain.validation import BatchResult, EventKind
from services.ingest.entrypoints.stream import StreamValidator, publish_quality_every
from services.ingest.errors import BodyTooLargeError, KafkaUnavailableError, UnsupportedMediaTypeError
from services.ingest.service import IngestService
from shared import http_metrics
from shared.events import LabelLogged, PredictionLogged
from shared.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter()


class FieldProblem(BaseModel):
    field: str = Field(description="The field, dotted (`features.age`), or `body` for the whole item.")
    message: str


class ItemError(BaseModel):
    index: int | None = Field(description="The item's position in the batch (0 for a single event).")
    reason: str = Field(
        description="Machine-readable: `schema_error`, `unknown_model`, `empty_body`, `empty_batch`, ..."
    )
    detail: str
    fields: list[FieldProblem]


class IngestReport(BaseModel):
    """What happened to each event of a request (202 when any was accepted, 422 when none was)."""

    accepted: int
    rejected: int
    errors: list[ItemError]
    event_id: str | None = Field(None, description="The accepted event's id (single-event routes only).")


class Problem(BaseModel):
    detail: str


def _event_body(event: type[BaseModel], *, batch: bool) -> dict[str, Any]:
    """The request body in OpenAPI: the routes read raw bytes (JSON and NDJSON), so FastAPI can't infer it."""
    schema = event.model_json_schema()
    if not batch:
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
    array = {"type": "array", "minItems": 1, "items": schema}
    return {
        "requestBody": {
            "required": True,
            "description": (
                f"A JSON array of {event.__name__} events, or NDJSON: one event per line. Each item is "
                "validated on its own: valid ones are accepted even when others are refused (listed in `errors`)."
            ),
            "content": {"application/json": {"schema": array}, "application/x-ndjson": {"schema": array}},
        }
    }


def _responses(single: bool) -> dict[int | str, dict[str, Any]]:
    accepted = "Accepted: the event is in Kafka." if single else "At least one event accepted (and in Kafka)."
    return {
        202: {"model": IngestReport, "description": accepted + " Refused items are listed in `errors`."},
        401: {
            "model": Problem,
            "description": "Missing or unknown API key.",
            "headers": {"WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}},
        },
        413: {"model": Problem, "description": "Body or batch over a size limit; the message names it."},
        415: {
            "model": Problem,
            "description": "Content-Type not accepted; the message lists the accepted ones.",
        },
        422: {
            "model": IngestReport,
            "description": "Nothing accepted; each error names the item and its fields.",
        },
        503: {
            "model": Problem,
            "description": "Kafka did not acknowledge in time; nothing in the request counts as accepted.",
            "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
        },
    }


def get_service(request: Request) -> IngestService:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.service.settings


ServiceDep = Annotated[IngestService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An ingest API key.")
bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def producing_app(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Security(api_key_header)] = None,
    authorization: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> str:
    """The producing app named by the request's API key (``X-API-Key`` or ``Authorization: Bearer``)."""
    key = x_api_key
    if key is None and authorization is not None:
        key = authorization.credentials.strip()
    app_name = settings.ingest_api_keys.get_secret_value().get(key or "")
    if app_name is None:
        raise HTTPException(
            401,
            "missing or unknown API key: send X-API-Key (keys are set in DRIFTLOOP_INGEST_API_KEYS)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return app_name


ProducingApp = Annotated[str, Depends(producing_app)]


def _require_media_type(request: Request, accepted: tuple[str, ...]) -> None:
    """Refuse a body we cannot read (415); a request without Content-Type is read as JSON."""
    media = media_type(request.headers.get("content-type"))
    if media is not None and media not in accepted:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media!r} is not accepted here; send one of: {', '.join(accepted)}"
        )


async def _body(request: Request, settings: Settings) -> bytes:
    return await read_limited(
        request.stream(), request.headers.get("content-length"), settings.ingest_max_body_bytes
    )


def _report(result: BatchResult, extra: dict[str, Any] | None = None) -> JSONResponse:
    """202 when anything was accepted (the body lists the refused items), 422 when nothing was."""
    body: dict[str, Any] = {
        "accepted": len(result.accepted),
        "rejected": len(result.rejected),
        "errors": [
            {
                "index": index,
                "reason": rejection.reason,
                "detail": rejection.detail,
                "fields": [{"field": e.field, "message": e.message} for e in rejection.errors],
            }
            for index, rejection in result.rejected
        ],
    }
    body.update(extra or {})
    status = 202 if result.accepted or not result.rejected else 422
    return JSONResponse(body, status_code=status)


EMPTY_BODY = (
    "the request body is empty: send the event(s) in it (curl's --data-binary @FILE sends an empty body, "
    "with only a warning, when FILE cannot be read)"
)


async def _single(
    kind: EventKind, request: Request, service: IngestService, settings: Settings
) -> JSONResponse:
    _require_media_type(request, JSON_TYPES)
    body = await _body(request, settings)
    if not body:
        return _refuse_body(service, "empty_body", EMPTY_BODY)
    result = await service.ingest(kind, [body])
    extra = {"event_id": str(result.accepted[0][1].event_id)} if result.accepted else None
    return _report(result, extra)


async def _batch(
    kind: EventKind, request: Request, service: IngestService, settings: Settings
) -> JSONResponse:
    _require_media_type(request, JSON_TYPES + NDJSON_TYPES)
    body = await _body(request, settings)
    if not body:
        return _refuse_body(service, "empty_body", EMPTY_BODY)
    try:
        payloads = split_batch(
            body,
            ndjson=is_ndjson(request.headers.get("content-type")),
            max_items=settings.ingest_max_batch_items,
        )
    except NotABatchError as exc:
        return _refuse_body(service, "not_a_batch", str(exc))
    if not payloads:
        return _refuse_body(service, "empty_batch", "the batch has no events; send at least one")
    return _report(await service.ingest(kind, payloads))


def _refuse_body(service: IngestService, reason: str, detail: str) -> JSONResponse:
    """422 for a body that holds no event at all: empty, or not a batch (no item to report on)."""
    service.metrics.requests_refused.labels("422").inc()
    error = {
        "index": None,
        "reason": reason,
        "detail": detail,
        "fields": [{"field": "body", "message": detail}],
    }
    return JSONResponse({"accepted": 0, "rejected": 0, "errors": [error]}, status_code=422)


@router.post(
    "/v1/predictions",
    status_code=202,
    summary="Log one prediction (a PredictionLogged as JSON)",
    openapi_extra=_event_body(PredictionLogged, batch=False),
    responses=_responses(single=True),
    response_model=None,
)
async def post_prediction(
    request: Request, service: ServiceDep, settings: SettingsDep, app: ProducingApp
) -> JSONResponse:
    return await _single(EventKind.PREDICTION, request, service, settings)


@router.post(
    "/v1/predictions/batch",
    status_code=202,
    summary="Log predictions: a JSON array, or NDJSON",
    openapi_extra=_event_body(PredictionLogged, batch=True),
    responses=_responses(single=False),
    response_model=None,
)
async def post_predictions(
    request: Request, service: ServiceDep, settings: SettingsDep, app: ProducingApp
) -> JSONResponse:
    return await _batch(EventKind.PREDICTION, request, service, settings)


@router.post(
    "/v1/labels",
    status_code=202,
    summary="Log one ground-truth label (a LabelLogged as JSON)",
    openapi_extra=_event_body(LabelLogged, batch=False),
    responses=_responses(single=True),
    response_model=None,
)
async def post_label(
    request: Request, service: ServiceDep, settings: SettingsDep, app: ProducingApp
) -> JSONResponse:
    return await _single(EventKind.LABEL, request, service, settings)


@router.post(
    "/v1/labels/batch",
    status_code=202,
    summary="Log labels: a JSON array, or NDJSON",
    openapi_extra=_event_body(LabelLogged, batch=True),
    responses=_responses(single=False),
    response_model=None,
)
async def post_labels(
    request: Request, service: ServiceDep, settings: SettingsDep, app: ProducingApp
) -> JSONResponse:
    return await _batch(EventKind.LABEL, request, service, settings)


@router.get("/metrics", include_in_schema=False)
def metrics(service: ServiceDep) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _report_crash(task: asyncio.Task[None]) -> None:
    """A background worker that dies of a bug must be loud, not leave the API up with nothing behind it."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("ingest background task %s stopped", task.get_name(), exc_info=task.exception())


def create_app(service: IngestService, *, run_validator: bool | None = None) -> FastAPI:
    """The ingest app; with ``run_validator`` the stream validator runs in the same process."""
    settings = service.settings
    with_validator = settings.ingest_run_validator if run_validator is None else run_validator

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(publish_quality_every(service, settings.ingest_quality_interval_s))]
        if with_validator:
            tasks.append(asyncio.create_task(StreamValidator(service).run()))
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
            await service.close()

    app = FastAPI(title="Driftloop ingest", lifespan=lifespan)
    app.state.service = service
    http_metrics.install(app, "ingest", service.metrics.registry, route=False)  # /metrics is the router's
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
