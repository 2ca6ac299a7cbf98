"""The monitor reads what the registry stores: a version's reference profile and the model's thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from driftloop.bench import synthetic
from services.monitor.adapters.registry import RegistryProfiles
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from tests.integration.test_registry_api import (
    READER,
    create_model,
    model_name,
    registry_settings,
    upload_version,
)

pytestmark = pytest.mark.integration


def test_monitor_gets_profile_and_threshold_overrides_from_a_real_registry(tmp_path: Path) -> None:
    settings = registry_settings(tmp_path, registry_token="r-token", monitor_profile_cache_seconds=0)
    profile = synthetic.reference_profile(synthetic.StreamSpec("x", numeric=3, categorical=1), accuracy=0.91)
    with TestClient(create_app(bootstrap(settings))) as registry:
        name = model_name()
        create_model(
            registry, name, drift_thresholds={"alpha": 0.05, "windows_needed": 3, "windows_considered": 4}
        )
        upload_version(registry, name, reference_profile=profile.model_dump(mode="json"))
        upload_version(registry, name)  # version 2 has no profile
        registry.headers.update(READER)
        source = RegistryProfiles(settings, client=registry)

        first = source.get(name, "1")
        assert first.profile == profile and first.profile.metrics == {"accuracy": 0.91}
        assert (
            first.thresholds.alpha,
            first.thresholds.windows_needed,
            first.thresholds.windows_considered,
        ) == (0.05, 3, 4)
        assert source.get(name, "2").profile is None
        assert source.get(name, "99").profile is None
        assert source.get("no-such-model", "1").profile is None
