"""The model server's HTTP API: ``POST /predict``, ``GET /status``, ``GET /healthz``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.serving.errors import InvalidFeatures, NoModelLoaded
from services.serving.server import ModelServer
from services.serving.watcher import ModelEventsWatcher
from shared.events import FeatureValue
from shared.topics import topic_names


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
    watcher: WatcherInfo | None = Field(
        description="How the server follows its alias (null when it does not): Kafka connection state."
    )


def create_app(server: ModelServer, *, watch: bool = True) -> FastAPI:
    """HTTP around ``server``; on start-up it loads the alias and follows model-events (``watch``)."""

    settings = server.settings
    watcher = (
        ModelEventsWatcher(
            settings.kafka_bootstrap,
            topic_names(settings.topic_prefix).model_events,
            server.model_name,
            server.alias,
            server.refresh,
            poll_s=settings.serving_alias_check_seconds,
        )
        if watch
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        server.refresh()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()

    app = FastAPI(title=f"Driftloop model server: {server.model_name}@{server.alias}", lifespan=lifespan)

    @app.exception_handler(NoModelLoaded)
    async def no_model(_request: Request, exc: NoModelLoaded) -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": {"code": "no_model", "message": str(exc)}})

    @app.exception_handler(InvalidFeatures)
    async def invalid(_request: Request, exc: InvalidFeatures) -> JSONResponse:
        field = f"features.{exc.issues[0]['feature']}" if exc.issues else "features"
        return JSONResponse(
            status_code=422,
            content={"error": {"code": "invalid", "message": str(exc), "field": field, "issues": exc.issues}},
        )

    @app.post("/predict")
    def predict(body: PredictRequest) -> PredictResponse:
        served = server.predict(body.features, body.prediction_id)
        return PredictResponse(model_name=server.model_name, **asdict(served))

    @app.get("/status")
    def status() -> StatusResponse:
        info = WatcherInfo(**asdict(watcher.status)) if watcher is not None else None
        return StatusResponse(**asdict(server.status), watcher=info)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """200 once a model is loaded (ready to serve), 503 before."""
        if server.current is None:
            raise NoModelLoaded(server.status.last_error or "no model loaded yet")
        return {"status": "ok", "version": server.current.version}

    return app
