"""HTTP request rate and latency of a service, in Prometheus's format, for the advisor and for autoscalers.

Ingest, the registry and the model server wrap their app in :class:`HttpMetrics` and serve ``/metrics``:
``driftloop_http_requests_total{service, code}`` counts answered requests by status class (2xx, 4xx, 5xx)
and ``driftloop_http_request_seconds{service}`` is their latency histogram. The scaling advisor reads
them (``services/advisor/adapters/http_services.py``); a Prometheus adapter can feed the same counter to
a HorizontalPodAutoscaler as requests per second (deploy/k8s).

It is a plain ASGI middleware (no per-request task or body copy): two clock reads and two metric updates a
request. ``/metrics`` itself is not counted, so a scraper does not make its own traffic.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

REQUESTS = "driftloop_http_requests"
LATENCY = "driftloop_http_request_seconds"
# from a cached prediction (~1 ms) to a registry upload of a large artifact (seconds)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNCOUNTED = frozenset({"/metrics"})


class HttpMetrics:
    """ASGI middleware: counts each answered request by status class and observes how long it took."""

    def __init__(self, app: Any, *, service: str, registry: CollectorRegistry) -> None:
        self.app = app
        self.registry = registry
        self.requests = Counter(
            REQUESTS, "HTTP requests answered, by status class.", ["service", "code"], registry=registry
        )
        self.latency = Histogram(
            LATENCY, "Seconds from a request's arrival to its last body byte sent.", ["service"],
            buckets=BUCKETS, registry=registry,
        )  # fmt: skip
        self._by_class = {c: self.requests.labels(service, c) for c in ("1xx", "2xx", "3xx", "4xx", "5xx")}
        self._latency = self.latency.labels(service)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in UNCOUNTED:
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [500]  # an app that raises before answering is a server error

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._latency.observe(time.perf_counter() - began)
            self._by_class.get(f"{status[0] // 100}xx", self._by_class["5xx"]).inc()


def install(app: Any, service: str, registry: CollectorRegistry | None = None, *, route: bool = True) -> None:
    """Counts ``app``'s requests as ``service`` into ``registry`` and, with ``route``, serves ``/metrics``.

    Add it last, so it is the outermost middleware and times everything else (a fast path included).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.requests import Request
    from starlette.responses import Response

    registry = registry if registry is not None else CollectorRegistry()
    app.add_middleware(HttpMetrics, service=service, registry=registry)
    if route:

        async def metrics(_request: Request) -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

        app.add_route("/metrics", metrics, include_in_schema=False)
