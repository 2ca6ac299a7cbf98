"""The model server's HTTP API: ``POST /predict``, ``GET /status``, ``GET /healthz``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from services.serving.errors import InvalidFeatures, InvalidRequest, NoModelLoaded
from services.serving.service import ModelServer
from shared import http_metrics
from shared.events import FeatureValue


class PredictRequest(BaseModel):
    features: dict[str, FeatureValue]
    prediction_id: str | None = Field(None, max_length=200, description="Your id, for the label later.")


class PredictResponse(BaseModel):
    prediction_id: str
    model_name: str
    model_version: int
    prediction: bool | int | float | str
    probabilities: dict[str, float] | None
    latency_ms: float


class ErrorInfo(BaseModel):
    code: str = Field(description="`invalid`, `no_model`, `too_large` or `unsupported_media_type`.")
    message: str
    field: str | None = Field(None, description="The offending field, dotted: `features.age`, `body`.")
    issues: list[dict[str, str]] | None = Field(
        None, description="Each problem: a feature issue (feature, kind, detail) or a field and message."
    )


class ErrorResponse(BaseModel):
    error: ErrorInfo


class Health(BaseModel):
    status: str
    version: int


MAX_BODY_BYTES = 1024 * 1024
"""A prediction request's largest body: a row of features, not a batch (1 MiB is thousands of features)."""

_ERROR = {"model": ErrorResponse}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {**_ERROR, "description": "Body over the size limit."},
    415: {**_ERROR, "description": "Content-Type is not application/json."},
    422: {
        **_ERROR,
        "description": "Malformed request, or features this model cannot take; `field` names it.",
    },
    503: {**_ERROR, "description": "No model loaded yet."},
}


def _field(loc: tuple[int | str, ...]) -> str:
    """``features.<name>`` or the top-level field; pydantic's union-member tags after that are dropped."""
    if not loc:
        return "body"
    return ".".join(map(str, loc[:2])) if loc[0] == "features" else str(loc[0])


def parse_predict_request(
    content_type: str | None, body: bytes, limit: int = MAX_BODY_BYTES
) -> PredictRequest:
    """The request, or :class:`InvalidRequest` (415, 413, 422) naming what is wrong; no Content-Type is JSON."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in ("", "application/json"):
        raise InvalidRequest(415, "unsupported_media_type", f"Content-Type {media!r}: send application/json")
    if len(body) > limit:
        raise InvalidRequest(413, "too_large", f"body over the {limit}-byte limit: send one row of features")
    try:
        return PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        issues: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            issues.setdefault(_field(error["loc"]), []).append(error["msg"])
        found = [
            {"field": field, "message": "; ".join(dict.fromkeys(msgs))} for field, msgs in issues.items()
        ]
        message = "; ".join(f"{i['field']}: {i['message']}" for i in found)
        raise InvalidRequest(422, "invalid", message, found[0]["field"], found) from None


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, stopping once it is over ``limit`` (the caller then answers 413)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


class WatcherInfo(BaseModel):
    connected: bool = Field(description="Whether the server hears model-events from Kafka right now.")
    since: datetime = Field(description="When it last connected or lost the connection.")
    last_error: str | None = Field(description="The last Kafka error, kept after reconnecting.")
    skipped_records: int = Field(description="model-events records skipped because they were not events.")


class StatusResponse(BaseModel):
    model_name: str
    alias: str
    version: int | None
    sha256: str | None
    loaded_at: datetime | None
    swaps: int
    last_error: str | None = Field(description="Why the newest version is not serving, if it failed to load.")
    last_error_at: datetime | None
    warnings: list[str] = Field(
        description="What makes this server blind: e.g. a model with no feature schema (inputs unchecked)."
    )
    watcher: WatcherInfo | None = Field(
        description="How the server follows its alias (null when it does not): Kafka connection state."
    )


def create_app(server: ModelServer) -> FastAPI:
    """HTTP around ``server``; on start-up it loads the alias and follows model-events (its watcher)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        server.start()
        try:
            yield
        finally:
            server.stop()

    app = FastAPI(title=f"Driftloop model server: {server.model_name}@{server.alias}", lifespan=lifespan)
    http_metrics.install(app, "model-server")

    @app.exception_handler(NoModelLoaded)
    async def no_model(_request: Request, exc: NoModelLoaded) -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": {"code": "no_model", "message": str(exc)}})

    @app.exception_handler(InvalidRequest)
    async def invalid_request(_request: Request, exc: InvalidRequest) -> JSONResponse:
        error = {"code": exc.code, "message": str(exc), "field": exc.field, "issues": exc.issues}
        return JSONResponse(status_code=exc.status, content={"error": error})

    @app.exception_handler(InvalidFeatures)
    async def invalid(_request: Request, exc: InvalidFeatures) -> JSONResponse:
        field = f"features.{exc.issues[0]['feature']}" if exc.issues else "features"
        return JSONResponse(
            status_code=422,
            content={"error": {"code": "invalid", "message": str(exc), "field": field, "issues": exc.issues}},
        )

    # The body is read by hand (size limit, Content-Type, one error shape), so it is declared for OpenAPI here.
    example = {"features": {"age": 41, "plan": "pro"}, "prediction_id": "order-17"}  # as in docs/serving.md
    body_spec = {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema(), "example": example}},
    }

    @app.post("/predict", responses=PREDICT_RESPONSES, openapi_extra={"requestBody": body_spec})
    async def predict(request: Request) -> PredictResponse:
        """One prediction from the version serving now; 422 names the field or feature that is wrong."""
        body = await _read_limited(request, MAX_BODY_BYTES)
        parsed = parse_predict_request(request.headers.get("content-type"), body)
        served = await run_in_threadpool(server.predict, parsed.features, parsed.prediction_id)
        return PredictResponse(model_name=server.model_name, **asdict(served))

    @app.get("/status")
    def status() -> StatusResponse:
        watcher = server.watcher
        info = WatcherInfo(**asdict(watcher.status)) if watcher is not None else None
        return StatusResponse(**asdict(server.status), watcher=info)

    @app.get("/healthz", responses={503: {**_ERROR, "description": "No model loaded yet."}})
    def healthz() -> Health:
        """200 once a model is loaded (ready to serve), 503 before."""
        current = server.current
        if current is None:
            raise NoModelLoaded(server.status.last_error or "no model loaded yet")
        return Health(status="ok", version=current.version)

    return app
