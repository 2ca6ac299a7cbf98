"""The trainer's HTTP side: Prometheus counters (``/metrics``) and which dependency is away (``/health``).

A dependency that is away is waited for, not fatal: ``shared.dependencies.Dependencies`` remembers which
ones are away and why, and logs one line when one goes away and one when it is back, never one per retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from shared.dependencies import Dependencies

log = logging.getLogger("services.trainer")


class TrainerMetrics:
    """A registry per worker (not the global one), so tests and several workers in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.triggers = Counter(
            "driftloop_trainer_triggers_total",
            "Training triggers read (before debouncing).",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "driftloop_trainer_dead_letters_total",
            "Records on a trainer topic kept on dead-letter instead of being used.",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.runs = Counter(
            "driftloop_trainer_runs_total",
            "Training runs ended, by outcome (finished, rejected, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.dependencies_away = Gauge(
            "driftloop_trainer_dependencies_away",
            "Dependencies (kafka, clickhouse, registry, artifacts) the trainer is waiting for.",
            registry=self.registry,
        )
        self.started = time.time()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def web_app(metrics: TrainerMetrics, dependencies: Dependencies) -> web.Application:
    """``/metrics`` and ``/health``: 200 while the worker consumes with every dependency there, 503 while it
    starts or waits (``degraded``, as the monitor's); the body says what is away and why. The process stays
    up either way: a restart would not bring the dependency back."""

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def health(request: web.Request) -> web.Response:
        body = {**dependencies.status(), "uptime_s": round(time.time() - metrics.started, 1)}
        return web.json_response(body, status=200 if body["status"] == "ok" else 503)

    app = web.Application()
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/health", health)
    return app


@asynccontextmanager
async def serve_health(
    metrics: TrainerMetrics, dependencies: Dependencies, port: int, host: str = "127.0.0.1"
) -> AsyncIterator[None]:
    """``/health`` and ``/metrics`` on ``host``:``port`` while the block runs; a taken port is logged,
    not fatal: training matters more than its health page."""
    runner = web.AppRunner(web_app(metrics, dependencies), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        log.info("trainer: /health and /metrics on %s", site.name)
    except OSError as exc:  # training matters more than its health page: run on, say so once
        log.error(
            "trainer: no /health or /metrics, port %d is taken (%s); set DRIFTLOOP_TRAINER_WEB_PORT",
            port,
            exc,
        )
    try:
        yield
    finally:
        await runner.cleanup()
