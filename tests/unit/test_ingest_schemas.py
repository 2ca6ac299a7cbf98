"""Registry schema lookups: cached, and an unreachable registry means 'schema unknown', never an error."""

from __future__ import annotations

import asyncio

import httpx

from services.ingest.adapters.registry import RegistrySchemaSource
from tests.unit.ingest_fakes import CHURN_SCHEMA


def _source(handler: httpx.MockTransport, ttl_s: float = 30.0) -> RegistrySchemaSource:
    return RegistrySchemaSource("http://registry", ttl_s=ttl_s, client=httpx.AsyncClient(transport=handler))


def test_answers_are_cached_and_404_is_unknown_model() -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/models/churn":
            return httpx.Response(200, json={"name": "churn", "feature_schema": None})
        return httpx.Response(404, json={"detail": "not found"})

    source = _source(httpx.MockTransport(handle))

    async def run() -> list[str]:
        results = [await source.lookup(name) for name in ("churn", "churn", "ghost", "ghost")]
        return [r.status for r in results]

    assert asyncio.run(run()) == ["no_schema", "no_schema", "unknown_model", "unknown_model"]
    assert calls == ["/models/churn", "/models/ghost"]


def test_unreachable_or_failing_registry_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def fail(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500)

    assert asyncio.run(_source(httpx.MockTransport(refuse)).lookup("churn")).status == "unavailable"
    assert asyncio.run(_source(httpx.MockTransport(fail)).lookup("churn")).status == "unavailable"


def test_registered_feature_schema_becomes_the_check() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"name": "churn", "feature_schema": CHURN_SCHEMA.model_dump(mode="json")}
        )

    lookup = asyncio.run(_source(httpx.MockTransport(handle)).lookup("churn"))
    assert lookup.status == "known" and lookup.check is not None
    assert [(i.feature, str(i.kind)) for i in lookup.check({"age": "x", "plan": "pro"})] == [
        ("age", "type_error")
    ]
    assert lookup.feature_names == ("age", "plan")
