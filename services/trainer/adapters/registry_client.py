"""The trainer's thin adapter to the registry's HTTP API (models, versions, aliases, artifacts)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.trainer.domain.registered import RegisteredModel
from services.trainer.errors import RegistryCallFailed, RegistryUnavailable
from shared.feature_schema import FeatureSchema
from shared.registry_auth import registry_headers
from shared.settings import Settings


class RegistryClient:
    """Synchronous client; runs run in a worker thread, so blocking I/O is fine here."""

    def __init__(self, base_url: str, token: str = "", timeout: float = 60.0) -> None:
        headers = registry_headers(token)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryClient:
        """A client acting as the trainer: with its own local token on one machine, so the audit log and
        ``model-events`` name the trainer for the versions it registers and the aliases it moves."""
        return cls(settings.registry_url, settings.registry_token_for("trainer"))

    def close(self) -> None:
        self._http.close()

    def check_health(self) -> None:
        """The registry answers, and neither its database nor its artifact store is away (a run needs both;
        its Kafka relay being away does not stop a run); raises otherwise."""
        response = self._http.get("/healthz", timeout=5.0)
        response.raise_for_status()
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        away = {
            k: v for k, v in dict(body.get("unavailable") or {}).items() if k in ("database", "artifacts")
        }
        if away:
            raise RegistryUnavailable(f"the registry is degraded: {away}")

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_error:
            raise RegistryCallFailed(
                f"registry {response.request.method} {response.request.url.path} answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        return response

    def get_model(self, name: str) -> RegisteredModel:
        body = self._check(self._http.get(f"/models/{name}")).json()
        return RegisteredModel(
            name=body["name"],
            task_type=body["task_type"],
            feature_schema=FeatureSchema.model_validate(body["feature_schema"]),
            training_recipe=body.get("training_recipe") or {},
            aliases=body.get("aliases") or {},
            tags=body.get("tags") or {},
        )

    def download_artifact(self, name: str, version: int) -> bytes:
        return self._check(self._http.get(f"/models/{name}/versions/{version}/artifact")).content

    def register_version(self, name: str, artifact: bytes, filename: str, metadata: dict[str, Any]) -> int:
        """Upload the artifact and register it as the next version in one request; returns its number."""
        response = self._http.post(
            f"/models/{name}/versions/upload",
            files={"artifact": (filename, artifact, "application/octet-stream")},
            data={"metadata": json.dumps(metadata, default=str)},
        )
        return int(self._check(response).json()["version"])

    def set_alias(self, name: str, alias: str, version: int, reason: str) -> None:
        self._check(
            self._http.put(f"/models/{name}/aliases/{alias}", json={"version": version, "reason": reason})
        )
