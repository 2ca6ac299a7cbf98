"""The registry as ingest's schema source: ``GET /models/{name}`` over HTTP, cached with a TTL.

An unreachable registry means "schema unknown" (events pass without the feature check), never an error:
ingest must keep accepting traffic while the registry restarts. Only a registry that answers 404 makes
a model unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

import httpx

from services.ingest.domain.schemas import SchemaLookup, lookup_from_schema
from shared.feature_schema import FeatureSchema
from shared.registry_auth import registry_headers

log = logging.getLogger(__name__)


class RegistrySchemaSource:
    """``GET {registry_url}/models/{name}`` with a TTL cache; failures are cached briefly as 'unavailable'."""

    def __init__(
        self,
        registry_url: str,
        *,
        ttl_s: float = 30.0,
        timeout_s: float = 2.0,
        token: str = "",
        unavailable_ttl_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = registry_url.rstrip("/")
        self._ttl = ttl_s
        self._unavailable_ttl = min(unavailable_ttl_s, ttl_s) if ttl_s else 0.0
        headers = registry_headers(token)
        self._client = client or httpx.AsyncClient(timeout=timeout_s, headers=headers)
        self._cache: dict[str, tuple[float, SchemaLookup]] = {}
        self._inflight: dict[str, asyncio.Future[SchemaLookup]] = {}

    async def lookup(self, model_name: str) -> SchemaLookup:
        cached = self._cache.get(model_name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._inflight.get(model_name)
        if pending is not None:  # one registry request per model, however many batches ask at once
            return await asyncio.shield(pending)
        future: asyncio.Future[SchemaLookup] = asyncio.get_running_loop().create_future()
        self._inflight[model_name] = future
        try:
            result = await self._fetch(model_name)
            future.set_result(result)
        finally:
            self._inflight.pop(model_name, None)
            if not future.done():
                future.set_result(SchemaLookup("unavailable"))
        ttl = self._unavailable_ttl if result.status == "unavailable" else self._ttl
        self._cache[model_name] = (time.monotonic() + ttl, result)
        return result

    async def _fetch(self, model_name: str) -> SchemaLookup:
        try:
            response = await self._client.get(f"{self._url}/models/{quote(model_name, safe='')}")
        except httpx.HTTPError as exc:
            log.warning(
                "registry at %s unreachable (%s); treating %r's schema as unknown", self._url, exc, model_name
            )
            return SchemaLookup("unavailable")
        if response.status_code == 404:
            return SchemaLookup("unknown_model")
        if response.status_code != 200:
            log.warning("registry answered %s for model %r; schema unknown", response.status_code, model_name)
            return SchemaLookup("unavailable")
        try:
            document = response.json().get("feature_schema")
            if not document:
                return SchemaLookup("no_schema")
            return lookup_from_schema(FeatureSchema.model_validate(document))
        except (ValueError, AttributeError) as exc:  # a schema we cannot read must not stop ingestion
            log.warning("could not read the feature schema of %r from the registry: %s", model_name, exc)
            return SchemaLookup("unavailable")

    async def aclose(self) -> None:
        await self._client.aclose()
