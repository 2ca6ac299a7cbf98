"""The monitor's view of the registry: profiles and threshold overrides, cached; a missing registry is not fatal."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.monitor.adapters.registry import RegistryProfiles
from services.monitor.domain.profiles import load_profiles_file, profiles_file_json
from shared.drift_thresholds import DriftThresholds
from shared.profile import build_profile
from shared.settings import Settings

PROFILE = build_profile({"x": [float(i) for i in range(100)]}, metrics={"accuracy": 0.9})


def _source(handler: httpx.MockTransport) -> RegistryProfiles:
    settings = Settings(registry_url="http://registry.test", monitor_profile_cache_seconds=60)
    return RegistryProfiles(settings, httpx.Client(base_url=settings.registry_url, transport=handler))


def test_profile_and_overrides_come_from_the_registry_and_are_cached() -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/models/churn":
            return httpx.Response(
                200, json={"name": "churn", "drift_thresholds": {"alpha": 0.05, "windows_needed": 1}}
            )
        if request.url.path == "/models/churn/versions/3/reference-profile":
            return httpx.Response(200, json=PROFILE.model_dump(mode="json"))
        return httpx.Response(404, json={"detail": "not found"})

    source = _source(httpx.MockTransport(handle))
    ref = source.get("churn", "3")
    assert ref.profile == PROFILE
    assert ref.thresholds.alpha == 0.05 and ref.thresholds.windows_needed == 1
    assert ref.thresholds.numeric_effect == DriftThresholds().numeric_effect
    source.get("churn", "3")
    assert len(calls) == 2, "the second lookup is served from the cache"

    missing = source.get("churn", "4")
    assert missing.profile is None and missing.thresholds.alpha == 0.05


def test_unknown_model_or_unreachable_registry_means_metrics_only() -> None:
    assert _source(httpx.MockTransport(lambda r: httpx.Response(404))).get("nope", "1").profile is None

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    ref = _source(httpx.MockTransport(refuse)).get("churn", "1")
    assert ref.profile is None and ref.thresholds == Settings().drift_thresholds


def test_profiles_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(profiles_file_json({"churn": {"1": PROFILE}}, {"churn": {"cooldown_windows": 9}}))
    source = load_profiles_file(path, DriftThresholds())
    assert source.get("churn", "1").profile == PROFILE
    assert source.get("churn", "1").thresholds.cooldown_windows == 9
    assert source.get("churn", "2").profile is None
