"""Reference profiles and drift thresholds per model version, read from the registry and cached briefly."""

from __future__ import annotations

import logging
import time

import httpx

from services.monitor.domain.profiles import VersionReference, thresholds_for
from shared.profile import ReferenceProfile
from shared.registry_auth import registry_headers
from shared.settings import Settings

log = logging.getLogger(__name__)


def registry_client(settings: Settings) -> httpx.Client:
    """An HTTP client for the registry, with the monitor's token if one is set."""
    token = settings.registry_token.get_secret_value()
    headers = registry_headers(token)
    return httpx.Client(base_url=settings.registry_url, timeout=5.0, headers=headers)


class RegistryProfiles:
    """Reads ``GET /models/{name}`` (thresholds) and ``GET /models/{name}/versions/{v}/reference-profile``.

    An unreachable registry or an unknown version is not fatal: the window gets metrics but no drift
    tests, and a warning says why; the lookup is retried after the cache time.
    """

    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        self.settings = settings
        self.client = client
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
