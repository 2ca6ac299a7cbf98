"""What a model version is judged against (profile and thresholds), and references kept in a JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.drift_thresholds import DriftThresholds
from shared.profile import ReferenceProfile


@dataclass(frozen=True)
class VersionReference:
    """What a version is judged against: its profile (None: metrics only) and its model's thresholds."""

    profile: ReferenceProfile | None
    thresholds: DriftThresholds


def thresholds_for(defaults: DriftThresholds, overrides: dict[str, Any] | None) -> DriftThresholds:
    """The settings' defaults with a model's registry overrides applied (unknown keys are refused)."""
    if not overrides:
        return defaults
    return DriftThresholds.model_validate({**defaults.model_dump(), **overrides})


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
