"""``/health`` (status and signals) and ``/advice`` (the current advice only), on the advisor's web port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


def web_app(status: Callable[[], dict[str, Any]]) -> web.Application:
    """``/health``: 200 while the loop runs, 503 before, after and while waiting for a dependency."""
    started = time.time()

    async def health(request: web.Request) -> web.Response:
        now = status()
        state = "ok" if now["running"] else "degraded" if now.get("degraded") else "unavailable"
        body = {"status": state, "uptime_s": round(time.time() - started, 1)}
        body.update({k: v for k, v in now.items() if k != "running"})
        return web.json_response(body, status=200 if now["running"] else 503)

    async def advice(request: web.Request) -> web.Response:
        now = status()
        return web.json_response({"advice": now["advice"], "http": now.get("signals", {}).get("http", {})})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/advice", advice)
    return app


@asynccontextmanager
async def serve_http(status: Callable[[], dict[str, Any]], host: str, port: int) -> AsyncIterator[None]:
    runner = web.AppRunner(web_app(status), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()
