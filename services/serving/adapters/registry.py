"""The little of the registry's HTTP API a model server needs: resolve an alias, read schema and answer type."""

from __future__ import annotations

import httpx

from services.serving.domain.model import AliasTarget
from services.serving.errors import ModelLoadError
from shared.answer_type import OUTPUT_TYPE_TAG, OUTPUT_TYPES, OutputType
from shared.feature_schema import FeatureSchema
from shared.registry_auth import registry_headers

__all__ = ["AliasTarget", "RegistryClient"]


class RegistryClient:
    """The registry over HTTP, with the server's own token; every failure is a :class:`ModelLoadError`."""

    def __init__(self, base_url: str, token: str = "", timeout: float = 10.0) -> None:
        headers = registry_headers(token)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def _get(self, path: str) -> dict[str, object]:
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise ModelLoadError(f"registry unreachable at {self._http.base_url}: {exc}") from exc
        if response.status_code != 200:
            raise ModelLoadError(f"registry said {response.status_code} for {path}: {response.text[:300]}")
        body: dict[str, object] = response.json()
        return body

    def resolve(self, model_name: str, alias: str) -> AliasTarget:
        body = self._get(f"/models/{model_name}/aliases/{alias}")
        return AliasTarget(int(body["version"]), str(body["artifact_uri"]), str(body["artifact_sha256"]))  # type: ignore[call-overload]

    def feature_schema(self, model_name: str) -> FeatureSchema:
        return FeatureSchema.model_validate(self._get(f"/models/{model_name}")["feature_schema"])

    def output_type(self, model_name: str, version: int) -> OutputType | None:
        """The answer type recorded for ``version`` (its tag ``output_type``, else the model's), or None."""
        for path in (f"/models/{model_name}/versions/{version}", f"/models/{model_name}"):
            tags = self._get(path).get("tags")
            recorded = tags.get(OUTPUT_TYPE_TAG) if isinstance(tags, dict) else None
            if recorded in OUTPUT_TYPES:
                return recorded
        return None

    def close(self) -> None:
        self._http.close()
