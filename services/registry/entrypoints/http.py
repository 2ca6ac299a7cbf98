"""The registry's FastAPI app: routes, error bodies, ``/healthz``, and the relays run for its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, InterfaceError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from services.registry.adapters.migrations import migrate
from services.registry.bootstrap import bootstrap
from services.registry.domain.mlflow_mapping import mlflow_error
from services.registry.entrypoints import (
    mlflow_artifacts,
    mlflow_registry,
    mlflow_tracking,
    openapi,
    routes_admin,
    routes_aliases,
    routes_models,
    routes_versions,
)
from services.registry.entrypoints.fast_resolve import ResolveFastPath
from services.registry.entrypoints.fast_writes import FastWrites
from services.registry.entrypoints.stream import OutboxRelay
from services.registry.errors import RegistryError, Unavailable
from services.registry.service import Registry
from shared import http_metrics
from shared.artifacts import ArtifactError
from shared.dependencies import Dependencies

log = logging.getLogger(__name__)


def _error(
    status: int, code: str, message: str, field: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "field": field}},
        headers=headers,
    )


MLFLOW_PATHS = ("/api/2.0/", "/api/3.0/", "/ajax-api/2.0/")


def _is_mlflow(request: Request) -> bool:
    """Whether the caller speaks MLflow's REST API: its errors then take MLflow's shape."""
    return request.url.path.startswith(MLFLOW_PATHS)


def _mlflow_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error_code": code, "message": message})


def _allowed_methods(request: Request) -> str:
    """Every method the API answers at this path, from its OpenAPI paths (Starlette names one route's)."""
    app = request.app
    paths: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "allowed_methods", None)
    if paths is None:
        paths = app.state.allowed_methods = [
            (compile_path(path)[0], {m.upper() for m in operations})
            for path, operations in app.openapi()["paths"].items()
        ]
    methods = set().union(*(m for pattern, m in paths if pattern.match(request.url.path)))
    return ", ".join(sorted(methods))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        if isinstance(exc, Unavailable):  # /healthz's probes say when it is back
            name = "artifacts" if exc.field == "artifact" else "database"
            request.app.state.dependencies.away(name, exc.message)
        if _is_mlflow(request):
            status, body = mlflow_error(exc)
            return JSONResponse(status_code=status, content=body, headers=exc.headers)
        return _error(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if isinstance(exc, DataError):  # a value the database cannot hold (a NUL in PostgreSQL text, ...)
            reason = str(exc.orig).splitlines()[0][:300] if exc.orig else "invalid value"
            return _error(422, "invalid", f"the database cannot store a value sent: {reason}", None)
        if not isinstance(exc, OperationalError | InterfaceError):
            raise exc  # our bug, not an outage: a 500 with its traceback in the log
        request.app.state.dependencies.away(
            "database", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        )
        return _error(503, "unavailable", "the registry database is unavailable; retry shortly", None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()))
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors)
        if _is_mlflow(_request):
            return _mlflow_response(400, "INVALID_PARAMETER_VALUE", message)
        return _error(422, "invalid", message, field or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if _is_mlflow(request) and exc.status_code in (404, 405):
            message = f"{request.method} {request.url.path} is not supported by Driftloop's MLflow API"
            return _mlflow_response(404, "ENDPOINT_NOT_FOUND", f"{message} (see docs/mlflow.md)")
        if _is_mlflow(request) and exc.status_code == 400:
            return _mlflow_response(400, "MALFORMED_REQUEST", f"the request cannot be read: {exc.detail}")
        if exc.status_code == 400:  # a body FastAPI could not parse (JSON nested too deeply, ...)
            return _error(422, "invalid", f"the request body cannot be read: {exc.detail}", "body")
        if exc.status_code == 405:
            allow = _allowed_methods(request)
            message = f"{request.method} is not allowed here; use {allow}"
            return _error(405, "method_not_allowed", message, None, {"Allow": allow})
        code = {404: "not_found"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))


async def _probe_database(app: FastAPI) -> None:
    """One ``SELECT 1`` (2 s at most): a database gone since the last request shows on ``/healthz``."""
    engine: Engine | None = getattr(app.state, "engine", None)
    if engine is None or getattr(app.state, "registry", None) is None:
        return  # still starting: ``database`` is already reported by the start-up loop

    def probe() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout=2.0)
    except (SQLAlchemyError, TimeoutError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else 'no answer in 2 s'}"
        app.state.dependencies.away("database", reason)
    else:
        app.state.dependencies.back("database")
    registry: Registry = app.state.registry
    if registry.settings.resolved_artifact_root.startswith("s3://"):
        await _probe_artifacts(app, registry)


async def _probe_artifacts(app: FastAPI, registry: Registry) -> None:
    """One HEAD request to the S3 store (2 s at most); a local folder needs no probe."""
    try:
        await asyncio.wait_for(asyncio.to_thread(registry.artifacts.probe), timeout=2.0)
    except (ArtifactError, TimeoutError) as exc:
        app.state.dependencies.away("artifacts", f"{type(exc).__name__}: {exc or 'no answer in 2 s'}"[:500])
    else:
        app.state.dependencies.back("artifacts")


async def _stop(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    stop.set()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


DB_RETRY_MAX_S = 30.0


async def _migrated(engine: Engine, dependencies: Dependencies, stop: asyncio.Event) -> bool:
    """Migrate, waiting with backoff while the database is away; False when stopped first."""
    delay = 0.5
    while not stop.is_set():
        try:
            await asyncio.to_thread(migrate, engine)
        except SQLAlchemyError as exc:
            dependencies.away("database", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, DB_RETRY_MAX_S)
        else:
            dependencies.back("database")
            return True
    return False


def create_app(registry: Registry) -> FastAPI:
    """The registry app; the database is migrated and relays started when the app starts (lifespan).

    A database that is away at start does not stop the registry: it serves ``/healthz`` (degraded, with
    the reason) and answers 503 elsewhere, migrates as soon as the database is back, then starts the relays.
    """
    settings = registry.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dependencies: Dependencies = app.state.dependencies
        engine = registry.engine
        app.state.engine = engine
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        async def start(migrated: bool) -> None:
            if not migrated and not await _migrated(engine, dependencies, stop):
                return
            app.state.registry = registry
            if registry.relays:
                app.state.relay = OutboxRelay(engine, registry.publish, dependencies=dependencies)
                tasks.append(asyncio.create_task(app.state.relay.run(stop, settings.registry_relay_interval)))
                tasks.append(
                    asyncio.create_task(registry.webhooks.run(stop, settings.registry_relay_interval))
                )

        try:
            await asyncio.to_thread(migrate, engine)  # the usual case: ready before the first request
        except SQLAlchemyError as exc:
            dependencies.away("database", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            starting = asyncio.create_task(start(migrated=False))
        else:
            starting = asyncio.create_task(start(migrated=True))
            await starting
        try:
            yield
        finally:
            stop.set()
            await _stop(stop, [starting, *tasks])
            await registry.publish.close()
            registry.resolve_cache.close()
            engine.dispose()

    app = FastAPI(
        title="Driftloop registry",
        version="1",
        description="Registered models, versions, aliases with history, artifacts, lineage, audit. "
        "Every change is announced on the model-events Kafka topic and to webhooks.",
        lifespan=lifespan,
    )
    app.state.dependencies = registry.dependencies
    _install_error_handlers(app)
    app.add_middleware(ResolveFastPath, state=app.state)
    app.add_middleware(FastWrites, state=app.state)  # registration, the hot write (same store code)
    http_metrics.install(app, "registry")  # outermost: the resolve fast path is counted too
    routers = [module.router for module in (routes_models, routes_versions, routes_aliases, routes_admin)]
    for router in routers:
        app.include_router(router)
    for module in (mlflow_registry, mlflow_tracking, mlflow_artifacts):  # docs/mlflow.md
        app.include_router(module.router)
    openapi.install(
        app,
        routers,
        open_reads=settings.registry_open_reads,
        anonymous_writes=settings.registry_allow_anonymous_writes,
    )

    @app.get("/healthz", tags=["health"], responses={503: {"description": "The database is away"}})
    async def healthz() -> JSONResponse:
        """``status`` is ``degraded`` with the reasons while a dependency (database, artifact store, Kafka
        for the outbox relay) is away: the registry waits for it and resumes by itself. 503 while the
        database is away (nothing can be served), 200 otherwise (reads and writes work; announcements or
        uploads wait)."""
        await _probe_database(app)
        body: dict[str, Any] = app.state.dependencies.status()
        return JSONResponse(body, status_code=503 if "database" in body["unavailable"] else 200)

    return app


def app_from_environment() -> FastAPI:
    """Factory for uvicorn workers: each process builds its own settings, adapters and app."""
    return create_app(bootstrap())


def serve(registry: Registry) -> None:
    """Serve on the port of ``DRIFTLOOP_REGISTRY_URL``, in ``DRIFTLOOP_REGISTRY_WORKERS`` processes."""
    settings = registry.settings
    url = urlsplit(settings.registry_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    # listen on every interface: in a container the URL's host is the service name, not a local address
    host = "127.0.0.1" if url.hostname in ("127.0.0.1", "localhost") else "0.0.0.0"
    if settings.resolved_artifact_root.startswith("s3://"):
        settings.refuse_shipped_secrets(
            "the registry", ["s3_secret_access_key"], talks_to=(settings.s3_endpoint_url,)
        )
    if host != "127.0.0.1" and settings.registry_allow_anonymous_writes:
        raise SystemExit(
            f"the registry listens on {host} with DRIFTLOOP_REGISTRY_ALLOW_ANONYMOUS_WRITES on: anyone who "
            "reaches it could publish and promote models; configure DRIFTLOOP_REGISTRY_TOKENS instead"
        )
    options: dict[str, Any] = {"host": host, "port": port, "log_level": settings.log_level.lower()}
    if settings.registry_workers > 1:
        # each worker process builds its own settings, engine and caches: replicas sharing one database
        uvicorn.run(
            "services.registry.entrypoints.http:app_from_environment",
            factory=True,
            workers=settings.registry_workers,
            access_log=False,
            **options,
        )
    else:
        uvicorn.run(create_app(registry), access_log=False, **options)
