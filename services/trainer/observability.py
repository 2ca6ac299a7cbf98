"""The trainer's own health: Prometheus counters (``/metrics``) and which dependency is away (``/health``).

A dependency that is away is waited for, not fatal: ``Dependencies`` remembers which ones are away and
why, and logs one line when one goes away and one when it is back, never one per retry.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

log = logging.getLogger(__name__)


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


class Dependencies:
    """Which dependencies are away and why; each change of state is logged once."""

    def __init__(self, metrics: TrainerMetrics | None = None) -> None:
        self._away: dict[str, str] = {}
        self._metrics = metrics
        self.running = False

    def away(self, name: str, reason: str) -> None:
        if name not in self._away:
            log.warning("%s is unavailable (%s); waiting for it, retrying with backoff", name, reason)
        self._away[name] = reason[:500]
        self._count()

    def back(self, name: str) -> None:
        if self._away.pop(name, None) is not None:
            log.info("%s is available again; resuming", name)
            self._count()

    def _count(self) -> None:
        if self._metrics is not None:
            self._metrics.dependencies_away.set(len(self._away))

    def status(self) -> dict[str, Any]:
        """``ok`` while consuming with every dependency there, ``degraded`` with the reasons otherwise."""
        state = "degraded" if self._away else ("ok" if self.running else "starting")
        return {"status": state, "unavailable": dict(self._away)}


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
