"""HTTP routes of the ingest service: thin adapters from requests to :class:`IngestService`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from services.ingest.bodies import (
    JSON_TYPES,
    NDJSON_TYPES,
    NotABatchError,
    is_ndjson,
    media_type,
    read_limited,
    split_batch,
)
from services.ingest.errors import UnsupportedMediaTypeError
from services.ingest.service import IngestService
from services.ingest.validation import BatchResult, EventKind
from shared.events import LabelLogged, PredictionLogged
from shared.settings import Settings

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
    return request.app.state.settings


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
