"""The worker's health for load balancers (``/health``) and its figures for Prometheus (``/metrics``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from services.monitor.adapters.prometheus import MonitorMetrics


def web_app(metrics: MonitorMetrics, status: Callable[[], dict[str, Any]]) -> web.Application:
    """``/metrics`` (Prometheus text) and ``/health``: 200 while the Kafka loop runs, 503 before and after.

    ``status`` returns at least ``running`` (bool); with ``degraded`` the worker is up but waiting for a
    dependency (503, ``status: degraded``, and ``waiting_for`` says which and since when). Everything else
    it returns is shown as is.
    """

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def health(request: web.Request) -> web.Response:
        now = status()
        state = "ok" if now["running"] else "degraded" if now.get("degraded") else "unavailable"
        body = {
            "status": state,
            "uptime_s": round(time.time() - metrics.started, 1),
            **{k: v for k, v in now.items() if k != "running"},
        }
        return web.json_response(body, status=200 if now["running"] else 503)

    app = web.Application()
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/health", health)
    return app


@asynccontextmanager
async def serve_http(
    metrics: MonitorMetrics, status: Callable[[], dict[str, Any]], port: int, host: str = "127.0.0.1"
) -> AsyncIterator[None]:
    """``web_app`` served on ``host``:``port`` while the block runs (loopback unless told otherwise)."""
    runner = web.AppRunner(web_app(metrics, status), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()
