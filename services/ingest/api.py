"""HTTP routes of the ingest service: thin adapters from requests to :class:`IngestService`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.ingest.bodies import NotABatchError, is_ndjson, read_limited, split_batch
from services.ingest.service import IngestService
from services.ingest.validation import BatchResult, EventKind
from shared.settings import Settings

router = APIRouter()


def get_service(request: Request) -> IngestService:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


ServiceDep = Annotated[IngestService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def producing_app(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The producing app named by the request's API key (``X-API-Key`` or ``Authorization: Bearer``)."""
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    app_name = settings.ingest_api_keys.get_secret_value().get(key or "")
    if app_name is None:
        raise HTTPException(
            401,
            "missing or unknown API key: send X-API-Key (keys are set in DRIFTLOOP_INGEST_API_KEYS)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return app_name


ProducingApp = Annotated[str, Depends(producing_app)]


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


async def _single(
    kind: EventKind, request: Request, service: IngestService, settings: Settings
) -> JSONResponse:
    result = await service.ingest(kind, [await _body(request, settings)])
    extra = {"event_id": str(result.accepted[0][1].event_id)} if result.accepted else None
    return _report(result, extra)


async def _batch(
    kind: EventKind, request: Request, service: IngestService, settings: Settings
) -> JSONResponse:
    body = await _body(request, settings)
    try:
        payloads = split_batch(
            body,
            ndjson=is_ndjson(request.headers.get("content-type")),
            max_items=settings.ingest_max_batch_items,
        )
    except NotABatchError as exc:
        service.metrics.requests_refused.labels("422").inc()
        return JSONResponse(
            {"accepted": 0, "rejected": 0, "errors": [{"index": None, "reason": "not_a_batch", "detail": str(exc),
                                                        "fields": [{"field": "body", "message": str(exc)}]}]},
            status_code=422,
        )  # fmt: skip
    return _report(await service.ingest(kind, payloads))


@router.post("/v1/predictions", status_code=202, summary="Log one prediction (a PredictionLogged as JSON)")
async def post_prediction(
    request: Request, service: ServiceDep, settings: SettingsDep, app: ProducingApp
) -> JSONResponse:
    return await _single(EventKind.PREDICTION, request, service, settings)


@router.post("/v1/predictions/batch", status_code=202, summary="Log predictions: a JSON array, or NDJSON")
async def post_predictions(
    request: Request, service: ServiceDep, settings: SettingsDep, app: ProducingApp
) -> JSONResponse:
    return await _batch(EventKind.PREDICTION, request, service, settings)


@router.post("/v1/labels", status_code=202, summary="Log one ground-truth label (a LabelLogged as JSON)")
async def post_label(
    request: Request, service: ServiceDep, settings: SettingsDep, app: ProducingApp
) -> JSONResponse:
    return await _single(EventKind.LABEL, request, service, settings)


@router.post("/v1/labels/batch", status_code=202, summary="Log labels: a JSON array, or NDJSON")
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
