"""Reference profiles and drift thresholds per model version, read from the registry and cached briefly."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from shared.drift_thresholds import DriftThresholds
from shared.profile import ReferenceProfile
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionReference:
    """What a version is judged against: its profile (None: metrics only) and its model's thresholds."""

    profile: ReferenceProfile | None
    thresholds: DriftThresholds


class ProfileSource(Protocol):
    def get(self, model_name: str, version: str) -> VersionReference: ...


def thresholds_for(defaults: DriftThresholds, overrides: dict[str, Any] | None) -> DriftThresholds:
    """The settings' defaults with a model's registry overrides applied (unknown keys are refused)."""
    if not overrides:
        return defaults
    return DriftThresholds.model_validate({**defaults.model_dump(), **overrides})


class RegistryProfiles:
    """Reads ``GET /models/{name}`` (thresholds) and ``GET /models/{name}/versions/{v}/reference-profile``.

    An unreachable registry or an unknown version is not fatal: the window gets metrics but no drift
    tests, and a warning says why; the lookup is retried after the cache time.
    """

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        token = settings.registry_token.get_secret_value()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = client or httpx.Client(base_url=settings.registry_url, timeout=5.0, headers=headers)
        self._cache: dict[tuple[str, str], tuple[float, VersionReference]] = {}

    def get(self, model_name: str, version: str) -> VersionReference:
        key = (model_name, version)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.settings.monitor_profile_cache_seconds:
            return hit[1]
        reference = self._fetch(model_name, version)
        self._cache[key] = (time.monotonic(), reference)
        return reference

    def _fetch(self, model_name: str, version: str) -> VersionReference:
        defaults = self.settings.drift_thresholds
        try:
            model = self.client.get(f"/models/{model_name}")
            if model.status_code == 404:
                log.warning("model %s is not in the registry: metrics only, no drift tests", model_name)
                return VersionReference(None, defaults)
            model.raise_for_status()
            thresholds = thresholds_for(defaults, model.json().get("drift_thresholds"))
            response = self.client.get(f"/models/{model_name}/versions/{version}/reference-profile")
            if response.status_code in (404, 422):  # unknown version, no profile, or not a registry version
                log.warning(
                    "%s version %s has no reference profile in the registry: no drift tests",
                    model_name,
                    version,
                )
                return VersionReference(None, thresholds)
            response.raise_for_status()
            return VersionReference(ReferenceProfile.model_validate(response.json()), thresholds)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "cannot read %s v%s from the registry (%s): no drift tests for now", model_name, version, exc
            )
            return VersionReference(None, defaults)


class StaticProfiles:
    """Fixed references, for unit tests and for running the monitor without a registry."""

    def __init__(self, references: dict[tuple[str, str], VersionReference], default: DriftThresholds) -> None:
        self.references = references
        self.default = default

    def get(self, model_name: str, version: str) -> VersionReference:
        return self.references.get((model_name, version), VersionReference(None, self.default))


def load_profiles_file(path: Path, defaults: DriftThresholds) -> StaticProfiles:
    """References from a JSON file, for running the monitor without a registry (benchmarks, air-gapped use).

    Format: ``{"models": {"<name>": {"thresholds": {...}, "versions": {"<version>": <profile>}}}}``.
    """
    raw = json.loads(path.read_text())
    references: dict[tuple[str, str], VersionReference] = {}
    for name, model in raw.get("models", {}).items():
        thresholds = thresholds_for(defaults, model.get("thresholds"))
        for version, profile in model.get("versions", {}).items():
            references[(name, str(version))] = VersionReference(
                ReferenceProfile.model_validate(profile), thresholds
            )
    return StaticProfiles(references, defaults)


def profiles_file_json(
    entries: dict[str, dict[str, ReferenceProfile]], thresholds: dict[str, dict[str, Any]] | None = None
) -> str:
    """The JSON ``load_profiles_file`` reads, from ``{model: {version: profile}}``."""
    models = {
        name: {
            "thresholds": (thresholds or {}).get(name, {}),
            "versions": {v: p.model_dump(mode="json") for v, p in versions.items()},
        }
        for name, versions in entries.items()
    }
    return json.dumps({"models": models})
